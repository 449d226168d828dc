"""The app contract (apps/app.py), checked on every app in `cli.APPS`: each command runs on the
app's smoke setting through the command line, writes the same run-folder files, returns the same
kind of result, honours overrides, and its export answers a process without dlsuite as the Keras
model does. A fifth app listed in APPS gets these tests without writing any.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from dlsuite.apps.app import FROM_COMMANDS, App, compare_outputs
from dlsuite.apps.cli import APPS, main, run_app
from dlsuite.shared.config import ConfigError, config_to_yaml
from tests.fresh_process import run_without_dlsuite


@dataclasses.dataclass
class SmokeRuns:
    name: str
    workdir: Path
    config_file: Path
    results: dict


@pytest.fixture(scope="module", params=list(APPS))
def smoke(request, tmp_path_factory) -> SmokeRuns:
    """Every command of one app, run once through `dlsuite <app> ...` on its smoke setting."""
    name, app = request.param, APPS[request.param]
    workdir = tmp_path_factory.mktemp(name)
    config = app.smoke_config(workdir)
    config_file = workdir / "smoke.yaml"
    config_file.write_text(config_to_yaml(config))
    train = run_app(name, ["train", "--config", str(config_file)])
    source = ["--from", train["run_dir"]]
    results = {
        "train": train,
        "evaluate": run_app(name, ["evaluate", *source]),
        # the smoke run's epochs: an app's finetune_defaults may ask for more (speech: 60)
        "finetune": run_app(name, ["finetune", *source, f"epochs={config.epochs}"]),
        "predict": run_app(name, ["predict", *source, *app.smoke_inputs(workdir)]),
        "export": run_app(name, ["export", *source]),
    }
    return SmokeRuns(name, workdir, config_file, results)


def test_train_evaluate_and_finetune_write_the_same_run_folder(smoke):
    for command in ("train", "evaluate", "finetune"):
        result = smoke.results[command]
        run_dir = Path(result["run_dir"])
        for name in ("config.yaml", "command.json", "metrics.json"):
            assert (run_dir / name).is_file(), (command, name)
        written = json.loads((run_dir / "metrics.json").read_text())
        assert set(written) == set(result) - {"run_dir"}, command
        record = json.loads((run_dir / "command.json").read_text())
        assert record["command"] == command
        assert (record["source"] is None) == (command == "train")
        assert yaml.safe_load((run_dir / "config.yaml").read_text())  # the resolved config, readable
    for command in ("train", "finetune"):
        run_dir = Path(smoke.results[command]["run_dir"])
        assert (run_dir / "model.keras").is_file(), command
        assert list((run_dir / "tb").rglob("events.out.tfevents.*")), command
        assert list((run_dir / "checkpoints").iterdir()), command
        assert smoke.results[command]["steps_per_epoch"] >= 1
    assert smoke.results["finetune"]["finetuned_from"] == smoke.results["train"]["run_dir"]
    assert smoke.results["evaluate"]["model"] == smoke.results["train"]["run_dir"]


def test_train_writes_the_config_it_was_given(smoke):
    run_dir = Path(smoke.results["train"]["run_dir"])
    assert (run_dir / "config.yaml").read_text() == smoke.config_file.read_text()


def test_a_finetuned_run_is_complete_on_its_own(smoke):
    """It keeps the files its commands need (vocabulary, LM): predict and export work from it."""
    tuned = smoke.results["finetune"]["run_dir"]
    for name in APPS[smoke.name].kept_files:
        if (Path(smoke.results["train"]["run_dir"]) / name).is_file():
            assert (Path(tuned) / name).is_file(), name
    inputs = APPS[smoke.name].smoke_inputs(smoke.workdir)
    assert len(run_app(smoke.name, ["predict", "--from", tuned, *inputs])) >= 1


def test_predict_answers_each_input(smoke):
    answers = smoke.results["predict"]
    inputs = APPS[smoke.name].smoke_inputs(smoke.workdir)
    assert isinstance(answers, list) and len(answers) == len(inputs)
    for answer, given in zip(answers, inputs, strict=True):
        assert next(iter(answer)) == "input" and answer["input"] == given


def test_export_answers_a_fresh_process_as_the_keras_model_does(smoke):
    exported = smoke.results["export"]
    assert exported["export_agrees"] and Path(exported["export_dir"], "saved_model.pb").is_file()
    app = APPS[smoke.name]
    source = Path(smoke.results["train"]["run_dir"])
    probe = app.export_probe(app.trained_config(source), source, app.load_model(source))
    inputs = smoke.workdir / "probe_inputs.npz"
    np.savez(inputs, **probe.inputs)
    outputs = smoke.workdir / "probe_outputs.npz"
    run_without_dlsuite(textwrap.dedent(f"""
        import json, numpy as np, tensorflow as tf
        for module in {list(probe.imports)!r}:
            __import__(module)
        signature = tf.saved_model.load({exported["export_dir"]!r}).signatures[{probe.signature!r}]
        given = np.load({str(inputs)!r}, allow_pickle=True)
        out = signature(**{{k: tf.constant(given[k]) for k in given.files}})
        np.savez({str(outputs)!r}, **{{k: v.numpy() for k, v in out.items()}})
        print(json.dumps(sorted(out)))
    """))
    answered = dict(np.load(outputs, allow_pickle=True))
    check = compare_outputs(probe, answered)
    assert check["export_agrees"], check


@pytest.mark.parametrize("precision", ["float16", "int8"])
def test_every_app_exports_at_lower_precision_checked_against_the_converted_model(smoke, precision):
    source = smoke.results["train"]["run_dir"]
    exported = run_app(smoke.name, ["export", "--from", source, f"precision={precision}"])
    assert exported["export_agrees"] and exported["precision"] == precision and exported["converted_layers"] >= 1
    assert Path(exported["export_dir"]) == Path(source) / f"export-{precision}"
    assert (Path(source) / "export" / "saved_model.pb").is_file()  # the float32 export is left alone


def test_litert_export_is_a_checked_file_or_a_clear_refusal(smoke, capsys):
    source = smoke.results["train"]["run_dir"]
    app = APPS[smoke.name]
    if type(app).litert_plan is App.litert_plan:  # the contract's default: no LiteRT
        assert main([smoke.name, "export", "--from", source, "format=litert"]) == 2
        assert "has no LiteRT export" in capsys.readouterr().err
        return
    exported = run_app(smoke.name, ["export", "--from", source, "format=litert", "precision=int8"])
    assert exported["export_agrees"] and Path(exported["export_dir"]).name == "int8.tflite"


def test_commands_on_a_run_start_from_its_config_and_check_overrides(smoke):
    app, source = APPS[smoke.name], smoke.results["train"]["run_dir"]
    trained = app.trained_config(source)
    assert app.resolve_config("predict", source) == trained
    fixed = next(k for k in app.config_class.MODEL_FIELDS if isinstance(getattr(trained, k), int | str)
                 and not isinstance(getattr(trained, k), bool))
    value = getattr(trained, fixed)
    changed = value + 1 if isinstance(value, int) else next(
        c for c in _choices(app.config_class, fixed) if c != value)
    for command in FROM_COMMANDS:
        with pytest.raises(ConfigError, match=f"'{fixed}' is fixed by the trained model"):
            app.resolve_config(command, source, overrides=[f"{fixed}={changed}"])
    with pytest.raises(ConfigError, match="Unknown config key 'no_such_setting'"):
        app.resolve_config("export", source, overrides=["no_such_setting=1"])


def test_cli_errors_are_messages_not_tracebacks(smoke, capsys):
    name, source = smoke.name, smoke.results["train"]["run_dir"]
    assert main([name, "predict"]) == 2
    assert "needs --from" in capsys.readouterr().err
    assert main([name, "predict", "--from", source]) == 2
    assert "needs inputs" in capsys.readouterr().err
    assert main([name, "evaluate", "--from", str(smoke.workdir / "no_such_run")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def _choices(config_class, key: str) -> tuple:
    import typing

    return typing.get_args(typing.get_type_hints(config_class)[key])


def test_the_command_line_names_every_app_it_runs(capsys):
    """The usage line (written before any app is imported) lists the apps that `cli.APPS` holds."""
    from dlsuite.apps import cli

    assert tuple(APPS) == cli.APP_NAMES
    assert main([]) == 0 and f"{{{','.join(APPS)},all,launch}}" in capsys.readouterr().out

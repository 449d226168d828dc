"""The app contract: what every dlsuite app provides, and the commands written once on top of it.

An app is one folder, `apps/<app>/`, whose `app.py` subclasses `App` and fills in the methods
under "The app's part"; `apps/cli.py` lists an instance of it in `APPS` (one line). Everything
the apps do alike is written here, once: the resolved config of a command (a trained run's own
config under `--from`, with `key=value` overrides checked against what the model fixes), run
folders and resuming a killed command, `metrics.json`, the files a fine-tuned run keeps from its
source, telling file inputs from text inputs, the export checked against the Keras model, and the
main job's row. Compile and fit live in `shared/training.fit_model`.

From the command line to the model in three calls an editor can follow:

    dlsuite vision train  ->  cli.main  ->  App.run  ->  VisionApp.train_and_evaluate  ->  build_model

Every app's commands take the same options and return the same kind of result:

    train | finetune | evaluate   a new run folder; its metrics (also in metrics.json) and "run_dir"
    distill                      the same, for a new (smaller) model taught by the `--from` runs
    predict                      one dict per input, its first key "input"
    export                       {"export_dir", "export_max_gap", "export_agrees"}
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from dlsuite.shared.config import ConfigError, load_config
from dlsuite.shared.distribute import is_chief
from dlsuite.shared.export import at_precision
from dlsuite.shared.litert import check_litert, write_litert
from dlsuite.shared.runs import atomic_write_text, create_run_dir, replace_dir, write_metrics
from dlsuite.shared.training import TrainConfig, load_run_model

COMMANDS = ("train", "evaluate", "finetune", "predict", "export", "distill")
FROM_COMMANDS = ("evaluate", "finetune", "predict", "export")  # the commands on a trained run
EXPORT_ALIASES = {"precision": "export_precision", "format": "export_format"}  # export's own short names
# distill: --from TEACHER[,TEACHER...]; the config is the first teacher's, and its model fields
# may change: they describe the student, a new model.


class ExportMismatchError(RuntimeError):
    """The exported SavedModel answers differently from the in-memory Keras model."""


@dataclasses.dataclass
class ExportProbe:
    """One call of an exported signature and what the in-memory Keras model answers to it.

    Attributes:
        inputs: dict of str -> np.ndarray. The signature's keyword arguments (raw inputs).
        expected: dict of str -> np.ndarray. Output name -> the Keras model's answer.
        tolerance: float. Largest |difference| allowed in float outputs; other outputs must be equal.
        signature: str. The signature to call. Defaults to "serving_default".
        imports: tuple of str. Modules a plain-TensorFlow process imports before loading the export
            (tensorflow_text registers the sentencepiece ops).
    """

    inputs: dict
    expected: dict
    tolerance: float = 1e-4
    signature: str = "serving_default"
    imports: tuple[str, ...] = ()


def call_export(export_dir: str | Path, probe: ExportProbe) -> dict[str, np.ndarray]:
    """The exported signature's answer to the probe's inputs (plain TensorFlow, no Keras model)."""
    import tensorflow as tf

    for module in probe.imports:
        importlib.import_module(module)
    signature = tf.saved_model.load(str(export_dir)).signatures[probe.signature]
    outputs = signature(**{name: tf.constant(value) for name, value in probe.inputs.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def compare_outputs(probe: ExportProbe, outputs: dict) -> dict:
    """{"export_max_gap": largest |float difference|, "export_agrees": within tolerance and all
    non-float outputs (labels, transcripts, translations) equal}."""
    gap, same = 0.0, True
    for name, want in probe.expected.items():
        want, got = np.asarray(want), np.asarray(outputs[name])
        if want.shape != got.shape:
            return {"export_max_gap": float("inf"), "export_agrees": False}
        if want.dtype.kind in "fc":
            gap = max(gap, float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0)
        else:
            same &= [_text(x) for x in want.ravel()] == [_text(x) for x in got.ravel()]
    return {"export_max_gap": gap, "export_agrees": bool(same and gap <= probe.tolerance)}


def _export_alias(override: str) -> str:
    key, sep, value = override.partition("=")
    return f"{EXPORT_ALIASES.get(key.strip(), key)}{sep}{value}"


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def run_folder(source: str | Path) -> Path:
    """The run folder of `--from`: the folder itself, or the folder holding a given model file."""
    path = Path(source)
    return path if path.is_dir() else path.parent


def write_predictions(results: list[dict], path: str | Path) -> Path:
    """predict's results as a .tsv table (a header of the dicts' keys, one row per input; lists and
    dicts, such as a long recording's `segments`, as JSON in their cell) or .json."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return atomic_write_text(path, json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    if path.suffix.lower() not in (".tsv", ".tab"):
        raise ValueError(f"{path}: predictions are written as .tsv or .json; got the suffix '{path.suffix}'.")
    columns = list(dict.fromkeys(key for result in results for key in result))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, delimiter="\t", lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows({key: json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value
                      for key, value in result.items()} for result in results)
    return atomic_write_text(path, text.getvalue())


def folder_size(path: Path) -> int:
    """Bytes of all files under `path` (an export's size on disk)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def is_existing_file(text: str) -> bool:
    """Whether a command-line input names a file. A sentence is no file name, however long: the
    operating system refuses names over 255 bytes (OSError), which here just means "text"."""
    try:
        return Path(text).expanduser().is_file()
    except (OSError, ValueError):
        return False


def read_inputs(items: list[str], kind: Literal["files", "text"]) -> list[str]:
    """predict's inputs, told apart the same way in every app.

    "files" (images, audio): every item must be an existing file. "text" (sentences): an item that
    is an existing file gives one input per line; any other item is itself an input.
    """
    if kind == "files":
        missing = [item for item in items if not is_existing_file(item)]
        if missing:
            shown = missing[0] if len(missing[0]) <= 80 else missing[0][:77] + "..."
            raise FileNotFoundError(f"No such file: '{shown}' ({len(missing)} of {len(items)} inputs missing). "
                                    "predict takes the paths of input files.")
        return list(items)
    texts = []
    for item in items:
        if not is_existing_file(item):
            texts.append(item)
            continue
        try:
            texts.extend(Path(item).expanduser().read_text(encoding="utf-8").splitlines())
        except UnicodeDecodeError as err:
            raise ValueError(f"'{item}' is not UTF-8 text ({err.reason} at byte {err.start}); "
                             "save it as UTF-8 or pass the sentences themselves.") from None
    return texts


class App:
    """The contract every app fills, and the commands built on it (see the module docstring).

    Class attributes an app sets:
        name: str. The app's name on the command line and in run folders.
        config_class: type. Its config dataclass (a `TrainConfig`; `config_class.MODEL_FIELDS`
            names the settings a trained model fixes).
        inputs_are: "files" or "text". What `predict` takes (see `read_inputs`).
        kept_files: tuple of str. Files of a run that a fine-tuned run copies from its source
            (vocabularies, the fusion LM), so it is complete on its own.
        extra_commands: tuple of str. Commands beyond COMMANDS, run by `run_extra`.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[TrainConfig]]
    inputs_are: ClassVar[Literal["files", "text"]] = "files"
    kept_files: ClassVar[tuple[str, ...]] = ()
    extra_commands: ClassVar[tuple[str, ...]] = ()

    # === The app's part ===
    def quick(self) -> TrainConfig:
        """The main job's setting (minutes on 2 CPU cores)."""
        raise NotImplementedError

    def smoke_config(self, workdir: Path) -> TrainConfig:
        """The smallest setting that runs every command in seconds, on data written into `workdir`
        (the conformance test runs it; so can a user checking an installation)."""
        raise NotImplementedError

    def smoke_inputs(self, workdir: Path) -> list[str]:
        """predict's inputs for a smoke run: file paths written into `workdir`, or sentences."""
        raise NotImplementedError

    def train_and_evaluate(self, config, run_dir: Path) -> dict:
        """Trains from scratch in `run_dir`, saves model.keras, returns the test metrics."""
        raise NotImplementedError

    def evaluate(self, config, run_dir: Path, source: Path) -> dict:
        """Metrics of the trained run `source` on the test split of `config`'s data."""
        raise NotImplementedError

    def finetune(self, config, run_dir: Path, source: Path) -> dict:
        """Continues training `source`'s model on `config`'s data; metrics before and after."""
        raise NotImplementedError

    def distill(self, config, run_dir: Path, teachers: list[Path]) -> dict:
        """Trains the model `config` describes on the labels and on the teachers' outputs
        (shared/distillation.py), saves it as model.keras, returns its test metrics."""
        raise NotImplementedError

    def predict(self, config, source: Path, inputs: list[str]) -> list[dict]:
        """One dict per raw input (first key "input") with the trained model's answer."""
        raise NotImplementedError

    def export(self, config, source: Path, model, export_dir: Path) -> None:
        """Writes the SavedModel of `model` (loaded from `source`; raw inputs in, answers out) to
        `export_dir`."""
        raise NotImplementedError

    def export_probe(self, config, source: Path, model) -> ExportProbe:
        """A few raw inputs for the export and the Keras model's answers to them."""
        raise NotImplementedError

    def litert_plan(self, config, source: Path, model):
        """What `format=litert` converts (shared/litert.LiteRTPlan): a model on tensors, calibration
        batches from the app's pipeline, probe inputs. Apps whose graph needs ops LiteRT lacks
        (string lookups, beam search) do not fill it in."""
        raise ValueError(f"The {self.name} app has no LiteRT export (format=litert); use format=saved_model.")

    def summary(self, metrics: dict) -> dict:
        """The main job's rows (name -> number) from a training run's metrics."""
        return {k: v for k, v in metrics.items() if k.startswith("test_")}

    def run_extra(self, command: str, config, run_dir: Path, source: str | None = None) -> dict:
        """An app's own command (`extra_commands`) in a new run folder; returns its results.
        `source`: the command's `--from` as given (None without one; the app checks it)."""
        raise ValueError(f"Unknown {self.name} command '{command}'.")

    def finetune_defaults(self, trained) -> dict:
        """Settings `finetune --from` starts from in place of the trained run's own (its YAML file and
        `key=value` overrides still win), e.g. smaller batches for an adaptation set far smaller
        than the training data. Never a `MODEL_FIELDS` setting. None by default."""
        return {}

    def main_job_extras(self, config) -> dict:
        """More rows for the main job beyond train + export (vision: its robustness experiment)."""
        return {}

    # === Written once for every app ===
    def load_model(self, source: str | Path, precision: str = "float32"):
        """The run's model; `precision` float16/int8: as the export at that precision computes."""
        return at_precision(load_run_model(source, self.name), precision)[0]

    def trained_config(self, source: str | Path) -> TrainConfig:
        """The resolved config a run was made with (its config.yaml), or the defaults without one."""
        path = run_folder(source) / "config.yaml"
        return load_config(self.config_class(), path) if path.is_file() else self.config_class()

    def resolve_config(self, command: str, source: str | None = None, config_file: str | None = None,
                       overrides: list[str] = (), quick: bool = False) -> TrainConfig:
        """A command's config: the defaults (or the quick preset) for `train`; the trained run's own
        config for the commands on a run (for `finetune`, with the app's `finetune_defaults` over
        it). Then the YAML file, then `key=value` overrides. A setting the trained model fixes
        (`MODEL_FIELDS`: its size, its vocabulary) cannot be overridden on a trained run: that is an
        error naming the key, never a silently ignored value."""
        if source and command not in FROM_COMMANDS:  # distill, cascade: from the first run's settings
            return load_config(self.trained_config(str(source).split(",")[0]), config_file, overrides)
        if command == "export":  # `export precision=int8 format=litert`, as the issue and README write it
            overrides = [_export_alias(item) for item in overrides]
        if command not in FROM_COMMANDS or not source:
            return load_config(self.quick() if quick else self.config_class(), config_file, overrides)
        if quick:
            raise ConfigError(f"--quick chooses a new model's settings; '{command} --from' uses the trained run's.")
        trained = self.trained_config(source)
        start = dataclasses.replace(trained, **self.finetune_defaults(trained)) if command == "finetune" else trained
        config = load_config(start, config_file, overrides)
        for key in getattr(self.config_class, "MODEL_FIELDS", ()):
            if getattr(config, key) != getattr(trained, key):
                raise ConfigError(
                    f"'{key}' is fixed by the trained model in {run_folder(source)} ({getattr(trained, key)!r}); "
                    f"'{command}' cannot change it to {getattr(config, key)!r}. Train a new model for that.")
        return config

    def run(self, command: str, config, source: str | Path | None = None, inputs: list[str] = ()):
        """Runs one command; see the module docstring for what each returns."""
        if command in FROM_COMMANDS:
            source = self.checked_source(command, source)
        if command == "distill":
            if type(self).distill is App.distill:
                raise ValueError(f"The {self.name} app has no distill command yet (see apps/vision/app.py's distill).")
            teachers = [self.checked_source(command, s) for s in str(source or "").split(",")]
        elif source and command not in FROM_COMMANDS:  # an app's own command on runs (vision cascade)
            for part in str(source).split(","):
                self.checked_source(command, part)
        if command == "predict":
            if not inputs:
                raise ValueError(f"'dlsuite {self.name} predict' needs inputs after the options "
                                 f"({'file paths' if self.inputs_are == 'files' else 'sentences or text files'}).")
            return self.predict(config, source, read_inputs(list(inputs), self.inputs_are))
        if command == "export":
            return self.export_checked(config, source)
        if command not in COMMANDS + self.extra_commands:
            raise ValueError(f"Unknown {self.name} command '{command}'. Choose one of "
                             f"{', '.join(COMMANDS + self.extra_commands)}.")
        if getattr(config, "strategy", None) == "parameter_server" and command in ("train", "finetune"):
            from dlsuite.shared.parameter_server import is_serving_task, serve

            if is_serving_task():  # a worker or parameter server: TensorFlow runs the chief's steps here
                serve()
                return {}
        run_dir = create_run_dir(config.run_root, self.name, command, config, source=source)
        if command == "train":
            metrics = self.train_and_evaluate(config, run_dir)
        elif command == "finetune":
            self._copy_kept_files(source, run_dir)
            metrics = self.finetune(config, run_dir, source) | {"finetuned_from": str(source)}
        elif command == "evaluate":
            metrics = self.evaluate(config, run_dir, source) | {"model": str(source)}
        elif command == "distill":
            metrics = self.distill(config, run_dir, teachers) | {"teachers": [str(t) for t in teachers]}
        else:
            metrics = self.run_extra(command, config, run_dir, source)
        write_metrics(run_dir, metrics)
        if not is_chief():  # a multi-worker job: the chief's folder is the run (shared/multi_worker.py)
            shutil.rmtree(run_dir, ignore_errors=True)
        return metrics | {"run_dir": str(run_dir)}

    def export_checked(self, config, source: Path, export_dir: str | Path | None = None) -> dict:
        """Exports into a temporary folder, checks its answers against the Keras model's, then
        moves it into place (`<run>/export`): a failed or wrong export never replaces a good one.
        `export_precision=float16|int8`: the model converted first (shared/export.at_precision),
        checked against the converted Keras model, into `<run>/export-<precision>`.
        `export_format=litert`: a `.tflite` file instead (`export_litert`)."""
        precision = config.export_precision
        if config.export_format == "litert":
            return self.export_litert(config, source, precision)
        folder = "export" if precision == "float32" else f"export-{precision}"
        final = Path(export_dir) if export_dir else run_folder(source) / folder
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.staging-"))
        try:
            model, converted = at_precision(self.load_model(source), precision)  # once, for export and check
            self.export(config, source, model, staging / "export")
            probe = self.export_probe(config, source, model)
            if precision == "float16":  # float16 rounding differs between Keras' and the graph's kernels
                probe = dataclasses.replace(probe, tolerance=max(probe.tolerance, 1e-2))
            check = compare_outputs(probe, call_export(staging / "export", probe))
            if not check["export_agrees"]:
                raise ExportMismatchError(
                    f"The exported model answers differently from the Keras model (largest gap "
                    f"{check['export_max_gap']:.3g}, tolerance {probe.tolerance:g}); nothing was written to {final}. "
                    "Please report this with the run folder.")
            replace_dir(staging / "export", final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        extra = {"precision": precision, "converted_layers": len(converted)} if precision != "float32" else {}
        return {"export_dir": str(final), **check, **extra, "size_bytes": folder_size(final)}

    def export_litert(self, config, source: Path, precision: str) -> dict:
        """`<run>/litert/<precision>.tflite` from the app's `litert_plan`, run with ai-edge-litert
        and checked against the float32 Keras model (shared/litert.LITERT_TOLERANCE)."""
        plan = self.litert_plan(config, source, self.load_model(source))
        final = run_folder(source) / "litert" / f"{precision}.tflite"
        staging = write_litert(plan, precision, final.with_name(f".unchecked-{final.name}"))
        try:
            check = check_litert(plan, staging, precision)
            if not check["export_agrees"]:
                raise ExportMismatchError(
                    f"The LiteRT file answers differently from the Keras model (largest gap "
                    f"{check['export_max_gap']:.3g}, top-1 agreement {check['top1_agreement']:.0%}); "
                    f"nothing was written to {final}. Try a higher precision.")
            staging.replace(final)
        finally:
            staging.unlink(missing_ok=True)
        return {"export_dir": str(final), "format": "litert", "precision": precision, **check}

    def main_job(self, run_root: str | Path) -> dict:
        """This app's part of `dlsuite all`: the quick setting trained, exported and checked."""
        config = dataclasses.replace(self.quick(), run_root=str(run_root))
        metrics = self.run("train", config)
        exported = self.run("export", config, source=metrics["run_dir"])
        rows = {**self.summary(metrics), "export max gap": exported["export_max_gap"],
                "export agrees": float(exported["export_agrees"]), **self.main_job_extras(config)}
        return {"run_dir": metrics["run_dir"], "export_dir": exported["export_dir"], "metrics": rows}

    def checked_source(self, command: str, source) -> Path:
        """`--from` of a command on a trained run: required, and it must exist."""
        if not source:
            raise ValueError(f"'dlsuite {self.name} {command}' needs --from <run folder or model.keras>.")
        if not Path(source).exists():
            raise FileNotFoundError(f"--from {source}: no such run folder or file.")
        return Path(source)

    def _copy_kept_files(self, source: Path, run_dir: Path) -> None:
        for name in self.kept_files:
            if (run_folder(source) / name).is_file():
                shutil.copy2(run_folder(source) / name, run_dir / name)

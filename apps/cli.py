"""The `dlsuite` command line: `dlsuite <app> <command> [options] [key=value ...]`.

    dlsuite vision train                          # train on embedded digits
    dlsuite vision train --config my.yaml epochs=5 normalization=lcn
    dlsuite vision finetune --from runs/vision/<run> data=folder:photos
    dlsuite vision evaluate --from runs/vision/<run>
    dlsuite vision predict --from runs/vision/<run> a.png b.jpg
    dlsuite vision export --from runs/vision/<run>
    dlsuite all                                   # the main job: every app, quick settings
    dlsuite launch --workers 2 -- vision train    # a multi-worker job on this machine
    dlsuite launch --workers 2 --ps 1 -- language train   # asynchronous, with a parameter server
    dlsuite vision train strategy=multi_worker launcher=ray num_workers=2   # on Ray workers

Apps are listed in one plain dict below: a name and an instance of the app's `App` subclass
(apps/app.py is the contract). From here a reader reaches the model in three calls:
main -> App.run (apps/app.py) -> <App>.train_and_evaluate (apps/<app>/app.py) -> build_model
(apps/<app>/model.py).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import warnings
from pathlib import Path

# Quiet TensorFlow's C++ start-up banners; errors still print.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras warns that fit(shuffle=True) is ignored for tf.data; our pipelines shuffle.
warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")

from dlsuite.shared.config import ConfigError, describe_fields  # noqa: E402
from dlsuite.shared.runs import atomic_write_json  # noqa: E402

APP_NAMES = ("vision", "language", "speech", "translation")


@functools.cache
def apps() -> dict:
    """App name -> the app. No registry: add a line here (and the app's folder) to add an app.
    Imported on first use, so commands that need no model (`language ngram`) start without
    TensorFlow."""
    from dlsuite.apps.language.app import LanguageApp
    from dlsuite.apps.speech.app import SpeechApp
    from dlsuite.apps.translation.app import TranslationApp
    from dlsuite.apps.vision.app import VisionApp

    return {"vision": VisionApp(), "language": LanguageApp(), "speech": SpeechApp(), "translation": TranslationApp()}


def __getattr__(name: str):
    if name == "APPS":  # `cli.APPS`: the apps, imported when first asked for
        return apps()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


INPUT_COMMANDS = ("predict", "generate", "ngram")  # the commands that take inputs (language: prompts, text files)
OVERRIDE = re.compile(r"[A-Za-z_]\w*=.*", re.DOTALL)  # key=value; "a = b" or "x=y z" text is an input


def _parser(app) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"dlsuite {app.name}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Run the {app.name} app. Settings come from the defaults (or, with --from, the trained "
        "run's config.yaml), then --config FILE (YAML), then key=value pairs; an unknown key is an error "
        "that lists the valid ones.",
        epilog="config keys (key = default  meaning):\n" + describe_fields(app.config_class),
    )
    from dlsuite.apps.app import COMMANDS

    parser.add_argument("command", choices=COMMANDS + app.extra_commands, help="what to do")
    parser.add_argument("--config", help="YAML file of key: value settings")
    parser.add_argument("--quick", action="store_true", help="start from the quick preset (the main job's settings)")
    parser.add_argument("--from", dest="source", help="run folder or model file to evaluate, fine-tune, predict with or export")
    parser.add_argument("--output", help="predict: also write the answers to FILE (.tsv or .json)")
    parser.add_argument("args", nargs="*", help="key=value overrides; for predict, also the inputs")
    return parser


def parse_command_line(app, argv: list[str]) -> tuple:
    """One app's command line -> (command, resolved config, --from source, inputs) for `App.run`."""
    ns = _parser(app).parse_intermixed_args(argv)  # options may sit between positionals
    overrides, inputs = split_overrides(ns.args)
    config = app.resolve_config(ns.command, ns.source, ns.config, overrides, ns.quick)
    if inputs and ns.command not in INPUT_COMMANDS:
        raise ConfigError(f"'{ns.command}' takes no inputs, got {inputs[0]!r}; settings are key=value.")
    return ns.command, config, ns.source, inputs


def split_overrides(args: list[str]) -> tuple[list[str], list[str]]:
    """(key=value settings, the other arguments: inputs)."""
    overrides = [a for a in args if " " not in a.split("=", 1)[0] and OVERRIDE.fullmatch(a)]
    return overrides, [a for a in args if a not in overrides]


def run_app(name: str, argv: list[str]) -> dict | list:
    """`dlsuite <name> ...` without the process: parses the command line, runs it, returns the result."""
    return apps()[name].run(*parse_command_line(apps()[name], argv))


def run_ngram_command(argv: list[str]) -> dict:
    """`dlsuite language ngram ...` without TensorFlow (it builds no neural model): the same
    settings and messages as through the language app, in about a fifth of the start-up time."""
    from dlsuite.apps.language import ngram_command

    parser = argparse.ArgumentParser(prog="dlsuite language ngram", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description=ngram_command.__doc__.split("\n\n")[0],
                                     epilog="config keys (key = default  meaning):\n"
                                     + describe_fields(ngram_command.NGramCommandConfig))
    parser.add_argument("--config", help="YAML file of key: value settings")
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--from", dest="source", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help="corpus text files and key=value settings")
    ns = parser.parse_intermixed_args(argv)
    overrides, inputs = split_overrides(ns.args)
    config = ngram_command.resolve_config(ns.source, ns.config, overrides, ns.quick)
    return ngram_command.build_arpa(inputs, config)


def is_user_error(err: Exception) -> bool:
    """Bad settings or inputs (printed as one line, exit status 2) rather than a bug."""
    if isinstance(err, ConfigError | FileNotFoundError | ValueError):
        return True
    from dlsuite.apps.app import ExportMismatchError
    from dlsuite.shared.training import NaNLossError

    return isinstance(err, ExportMismatchError | NaNLossError)


def run_all(argv: list[str]) -> dict:
    """The main job: each app's quick end-to-end pipeline, then one summary table."""
    parser = argparse.ArgumentParser(prog="dlsuite all", description=run_all.__doc__)
    parser.add_argument("--run-root", default="runs", help="where run folders go")
    ns = parser.parse_args(argv)
    summary = {}
    for name, app in apps().items():
        summary[name] = app.main_job(ns.run_root)
    atomic_write_json(Path(ns.run_root) / "summary.json", summary)
    print("\n".join(summary_lines(summary)))
    print(f"(also in {Path(ns.run_root) / 'summary.json'})")
    return summary


def summary_lines(summary: dict) -> list[str]:
    """The main job's table: one line per app metric; numbers to 4 places, anything else (a
    fusion LM's unit, a flag) as written."""
    lines = ["", "=== dlsuite main job summary ===", f"{'app':<12} {'metric':<34} {'value':>10}  output"]
    for app, result in summary.items():
        for name, value in result["metrics"].items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            shown = f"{value:>10.4f}" if number else f"{value!s:>10}"
            lines.append(f"{app:<12} {name:<34} {shown}  {result['run_dir']}")
    return lines


def run_on_ray(app: str, argv: list[str]) -> int:
    """`dlsuite <app> ... launcher=ray num_workers=N`: `launcher` and `num_workers` are the
    launcher's options, not the app's; the rest is the command each Ray worker runs."""
    from dlsuite.apps.ray_launch import launch_on_ray

    workers = [a.split("=", 1)[1] for a in argv if a.startswith("num_workers=")]
    if workers and not workers[-1].isdigit():
        raise ValueError(f"num_workers must be a whole number, got '{workers[-1]}'")
    command = [a for a in argv if a != "launcher=ray" and not a.startswith("num_workers=")]
    return launch_on_ray([app, *command], int(workers[-1]) if workers else 2)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = f"usage: dlsuite {{{','.join(APP_NAMES)},all,launch}} <command> [--help]\n\n" + __doc__
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    app, rest = argv[0], argv[1:]
    try:
        if app == "all":
            run_all(rest)
            return 0
        if app == "launch":  # a multi-worker job on this machine (apps/launch.py)
            from dlsuite.apps import launch

            return launch.main(rest)
        if "launcher=ray" in rest:  # the same command on Ray workers (apps/ray_launch.py)
            return run_on_ray(app, rest)
        if app not in APP_NAMES:
            print(f"Unknown app '{app}'. Choose one of: {', '.join(APP_NAMES)}, all, launch.", file=sys.stderr)
            return 2
        if app == "language" and rest[:1] == ["ngram"]:
            result = run_ngram_command(rest[1:])
        else:
            result = run_app(app, rest)
            output = _parser(apps()[app]).parse_known_intermixed_args(rest)[0].output
            if output and isinstance(result, list):  # predict's answers, one row per input
                from dlsuite.apps.app import write_predictions

                print(f"(written to {write_predictions(result, output)})", file=sys.stderr)
    except Exception as err:
        if not is_user_error(err):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

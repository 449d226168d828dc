"""The `dlsuite` command line: `dlsuite <app> <command> [options] [key=value ...]`.

    dlsuite vision train                          # train on embedded digits
    dlsuite vision train --config my.yaml epochs=5 normalization=lcn
    dlsuite vision finetune --from runs/vision/<run> data=folder:photos
    dlsuite vision evaluate --from runs/vision/<run>
    dlsuite vision predict --from runs/vision/<run> a.png b.jpg
    dlsuite vision export --from runs/vision/<run>
    dlsuite all                                   # the main job: every app, quick settings

Apps are listed in one plain dict below; each app folder has the same files
(config.py, data.py, model.py, train.py, export.py), so from here a reader
reaches the model in two hops: APPS -> apps/<app>/train.py -> apps/<app>/model.py.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import warnings
from pathlib import Path

# Quiet TensorFlow's C++ start-up banners; errors still print.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras warns that fit(shuffle=True) is ignored for tf.data; our pipelines shuffle.
warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
# Length-bucketed text datasets have no known size; Keras warns at each epoch's end.
warnings.filterwarnings("ignore", message="Your input ran out of data")

from dlsuite.shared.config import ConfigError, describe_fields, load_config  # noqa: E402
from dlsuite.shared.runs import atomic_write_json  # noqa: E402

# App name -> its package. No registry: add a line here to add an app.
APPS = {
    "vision": "dlsuite.apps.vision",
    "language": "dlsuite.apps.language",
    "speech": "dlsuite.apps.speech",
    "translation": "dlsuite.apps.translation",
}
COMMANDS = ("train", "evaluate", "finetune", "predict", "export")


def _parser(app: str, extra_commands: tuple[str, ...], config_cls) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"dlsuite {app}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Run the {app} app. Settings come from the defaults, then --config FILE "
        "(YAML), then key=value pairs; an unknown key is an error that lists the valid ones.",
        epilog="config keys (key = default  meaning):\n" + describe_fields(config_cls),
    )
    parser.add_argument("command", choices=COMMANDS + extra_commands, help="what to do")
    parser.add_argument("--config", help="YAML file of key: value settings")
    parser.add_argument("--quick", action="store_true", help="start from the quick preset (the main job's settings)")
    parser.add_argument("--from", dest="source", help="run folder or model file to evaluate, fine-tune, predict with or export")
    parser.add_argument("args", nargs="*", help="key=value overrides; for predict, also input files")
    return parser


def run_app(app: str, argv: list[str]) -> dict | list:
    """Parses one app's command line and runs the command; returns its result."""
    package = importlib.import_module(APPS[app])
    config_module = importlib.import_module(f"{APPS[app]}.config")
    extra = getattr(package, "EXTRA_COMMANDS", ())
    parser = _parser(app, tuple(extra), config_module.Config)
    ns = parser.parse_intermixed_args(argv)  # options may sit between positionals
    overrides = [a for a in ns.args if "=" in a]
    inputs = [a for a in ns.args if "=" not in a]
    default = config_module.quick() if ns.quick else config_module.Config()
    config = load_config(default, ns.config, overrides)
    return package.run_command(ns.command, config, ns.source, inputs)


def run_all(argv: list[str]) -> dict:
    """The main job: each app's quick end-to-end pipeline, then one summary table."""
    parser = argparse.ArgumentParser(prog="dlsuite all", description=run_all.__doc__)
    parser.add_argument("--run-root", default="runs", help="where run folders go")
    ns = parser.parse_args(argv)
    summary = {}
    for app, module_name in APPS.items():
        package = importlib.import_module(module_name)
        summary[app] = package.main_job(ns.run_root)
    atomic_write_json(Path(ns.run_root) / "summary.json", summary)
    print("\n=== dlsuite main job summary ===")
    print(f"{'app':<12} {'metric':<34} {'value':>10}  output")
    for app, result in summary.items():
        for name, value in result["metrics"].items():
            print(f"{app:<12} {name:<34} {value:>10.4f}  {result['run_dir']}")
    print(f"(also in {Path(ns.run_root) / 'summary.json'})")
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = f"usage: dlsuite {{{','.join(APPS)},all}} <command> [--help]\n\n" + __doc__
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    app, rest = argv[0], argv[1:]
    try:
        if app == "all":
            run_all(rest)
            return 0
        if app not in APPS:
            print(f"Unknown app '{app}'. Choose one of: {', '.join(APPS)}, all.", file=sys.stderr)
            return 2
        result = run_app(app, rest)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

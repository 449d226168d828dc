"""A multi-worker job on Ray: Ray Train's `TensorflowTrainer` starts the workers and sets their TF_CONFIG.

    dlsuite vision train --quick strategy=multi_worker launcher=ray num_workers=2
    dlsuite launch --ray --workers 2 -- vision train --quick

The same job as `dlsuite launch` (apps/launch.py), with Ray in place of local processes: each Ray
worker runs the dlsuite command under `strategy=multi_worker` (unless the command names a
strategy). Ray's TensorFlow backend gives worker i (its world rank) the TF_CONFIG
`{"cluster": {"worker": ["<node ip>:<free port>", ...]}, "task": {"type": "worker", "index": i}}`:
no "chief" task, so worker 0 is the chief (`shared.distribute.is_chief`) and writes the run folder
under `run_root`; the others write under `<run_root>/.workers/`. Ray's run state and each worker's
result (`result-<rank>.json`) go to `<run_root>/.ray/<job>/`; the chief's result is printed.

Where it runs: with `RAY_ADDRESS` set (`auto`, `ray://head:10001`: the variable `ray.init` reads),
on that cluster, whose nodes must see `run_root` at the same absolute path (shared storage).
Without it, a private Ray instance on this machine (one CPU per worker, no dashboard), shut down at
the end. Ray 2.60 runs Ray Train V2 (`RAY_TRAIN_V2_ENABLED` defaults to 1): this file uses the V2
API (`ray.train.ScalingConfig`, `RunConfig`; results come back through files, as V2 keeps
`report()`ed metrics only with a checkpoint).

Needs `pip install "ray[train]==2.60.0"` (not a dlsuite dependency).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

RAY_PIN = "ray[train]==2.60.0"


def launch_on_ray(argv: list[str], num_workers: int, timeout: float | None = None) -> int:
    """Runs `dlsuite <app> <command> ...` (argv) on `num_workers` Ray workers; returns the exit status:
    0 on success, 2 for a bad command line or a failed worker, 124 past `timeout` seconds (counted
    from this call: Ray's start-up, about 25 s on 2 CPU cores, included)."""
    started = time.monotonic()
    if num_workers < 1:  # Ray runs num_workers=0 in this process, without TF_CONFIG: no multi-worker job
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if len(argv) < 2:
        raise ValueError(f"give the app and its command, e.g. ['vision', 'train', '--quick'], got {argv}")
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.tensorflow import TensorflowTrainer
    except ImportError as err:
        print(f"error: launcher=ray needs Ray Train: pip install '{RAY_PIN}' ({err})", file=sys.stderr)
        return 2

    app, options = argv[0], list(argv[1:])
    checked = _checked(app, options)  # a bad command line fails here, before Ray starts
    if checked is None:
        return 2
    command, run_root = checked
    # Ray workers run in a folder of Ray's: the run folder must not depend on it.
    options = [a for a in options if not a.startswith("run_root=")] + [f"run_root={run_root}"]
    if not any(a.startswith("strategy=") for a in options):
        options.append("strategy=multi_worker")
    job = f"{app}-{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    results = Path(run_root) / ".ray" / job

    runtime_env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")},
                   "worker_process_setup_hook": "dlsuite.apps.ray_launch._quiet_worker_logs"}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(runtime_env=runtime_env)  # connects to the cluster RAY_ADDRESS names
    else:
        ray.init(num_cpus=num_workers, include_dashboard=False, runtime_env=runtime_env)
    trainer = TensorflowTrainer(
        _train_loop,
        train_loop_config={"app": app, "argv": options, "cwd": os.getcwd(), "results": str(results)},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=False, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name=job, storage_path=str(Path(run_root) / ".ray")),
    )
    outcome: dict = {}

    def fit():
        try:
            trainer.fit()
        except Exception as err:  # a failed worker (ray.train.WorkerGroupError) or Ray itself
            outcome["error"] = err

    # fit() has no timeout of its own: it runs in a thread so that the wait can be bounded, and
    # ray.shutdown() ends the job (its controller and workers belong to this driver).
    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    try:
        thread.join(None if timeout is None else max(0.0, timeout - (time.monotonic() - started)))
    except KeyboardInterrupt:
        ray.shutdown()
        return 130
    timed_out = thread.is_alive()  # before shutdown, which ends fit() with an error of its own
    ray.shutdown()
    if timed_out:
        print(f"[ray] the job ran past the timeout of {timeout:g} s; stopped every worker.", file=sys.stderr)
        return 124
    if "error" in outcome:
        print(f"[ray] the job failed: {outcome['error']}", file=sys.stderr)
        return 2
    print((results / "result-0.json").read_text())  # the chief's result, as `dlsuite <app> ...` prints it
    return 0


def _checked(app: str, options: list[str]) -> tuple[str, str] | None:
    """(command, its run_root made absolute), or None after printing why the command line is wrong."""
    from dlsuite.apps.cli import APPS, parse_command_line
    from dlsuite.shared.config import ConfigError

    if app not in APPS:
        print(f"error: unknown app '{app}'. Choose one of: {', '.join(APPS)}.", file=sys.stderr)
        return None
    try:
        command, config, _, _ = parse_command_line(APPS[app], options)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return None
    except SystemExit:  # argparse has printed the usage error
        return None
    return command, str(Path(config.run_root).resolve())


def _train_loop(config: dict) -> None:
    """One Ray worker: the dlsuite command; its result goes to `result-<world rank>.json`."""
    import ray.train

    # Ray's TensorFlow backend sets TF_USE_LEGACY_KERAS=1, which points tf.keras at the tf_keras
    # package: without it `import tensorflow_text` fails ("Keras cannot be imported"). dlsuite is Keras 3.
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    if os.path.isdir(config["cwd"]):  # relative --config / --from / data= paths mean what they meant to the user
        os.chdir(config["cwd"])
    from dlsuite.apps.cli import run_app
    from dlsuite.shared.runs import atomic_write_json

    result = run_app(config["app"], config["argv"])
    rank = ray.train.get_context().get_world_rank()
    atomic_write_json(Path(config["results"]) / f"result-{rank}.json", result)


def _quiet_worker_logs() -> None:
    """Runs first in every Ray worker process of the job (runtime_env worker_process_setup_hook)."""
    # Ray sets the root logger to INFO: TensorFlow would log a line per collective op.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    # Ray Train's placement-group cleaner asks the State API (served by the dashboard, not installed
    # with ray[train]) every second whether the controller lives, and warns each time it cannot.
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)

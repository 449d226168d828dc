"""The vision app: image classification with contrast normalization and augmentation.

    dlsuite vision train | evaluate | finetune | predict | export | figures | robustness

`run_command` maps each command to one function of train.py, export.py or
report.py; `main_job` is this app's part of `dlsuite all`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dlsuite.apps.commands import need_source, run_in_new_folder
from dlsuite.shared.runs import create_run_dir

EXTRA_COMMANDS = ("figures", "robustness")
APP = "vision"


def run_command(command: str, config, source: str | None, inputs: list[str]):
    from dlsuite.apps.vision import export, report, train

    if command == "predict":
        if not inputs:
            raise ValueError("'dlsuite vision predict' needs image files after the options.")
        return train.predict(need_source(APP, command, source), inputs, config.top_k)
    if command == "export":
        return {"export_dir": str(export.export_run(need_source(APP, command, source), top_k=config.top_k))}
    if command == "figures":
        run_dir = create_run_dir(config.run_root, APP, command, config)
        paths = [report.contrast_figure(run_dir), report.jitter_samples_figure(run_dir, config.image_size)]
        return {"figures": [str(p) for p in paths]}
    if command == "robustness":
        run_dir = create_run_dir(config.run_root, APP, command, config)
        return report.robustness_experiment(config, run_dir) | {"run_dir": str(run_dir)}
    return run_in_new_folder(APP, command, config, source, train)


def main_job(run_root: str) -> dict:
    """Quick digits training, export checked against the Keras model, figures, robustness."""
    from dlsuite.apps.vision import config as vision_config
    from dlsuite.apps.vision import export, report, train

    config = dataclasses.replace(vision_config.quick(), run_root=run_root)
    run_dir = create_run_dir(run_root, APP, "train", config)
    metrics = train.train_and_evaluate(config, run_dir)
    export_dir = export.export_run(run_dir, top_k=config.top_k)
    gap = export.check_export_matches(run_dir, export_dir, n=32)
    report.contrast_figure(run_dir)
    report.jitter_samples_figure(run_dir, config.image_size)
    robust_config = dataclasses.replace(config, epochs=15)
    robust_dir = create_run_dir(run_root, APP, "robustness", robust_config)
    robust = report.robustness_experiment(robust_config, robust_dir)
    return {
        "run_dir": str(run_dir),
        "export_dir": str(Path(export_dir)),
        "metrics": {
            "digits test accuracy": metrics["test_accuracy"],
            "train seconds": metrics["train_seconds"],
            "export max |p - p_keras|": gap,
            **{f"jittered digits acc, {k.split('_')[1]}": v for k, v in robust.items()},
        },
    }

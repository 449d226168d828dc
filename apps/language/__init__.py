"""The language app: n-gram and neural language models with large-vocabulary outputs.

    dlsuite language train | evaluate | finetune | predict | export | generate

`run_command` maps each command to one function of train.py or export.py; `main_job` is this
app's part of `dlsuite all`.
"""

from __future__ import annotations

import dataclasses

from dlsuite.apps.commands import need_source, run_in_new_folder
from dlsuite.shared.runs import create_run_dir

EXTRA_COMMANDS = ("generate",)
APP = "language"


def run_command(command: str, config, source: str | None, inputs: list[str]):
    from dlsuite.apps.language import export, train

    if command == "predict":
        if not inputs:
            raise ValueError("'dlsuite language predict' needs sentences (quoted) after the options.")
        return train.score_sentences(need_source(APP, command, source), inputs)
    if command == "generate":
        return train.generate(need_source(APP, command, source), inputs or [""], config)
    if command == "export":
        return {"export_dir": str(export.export_run(need_source(APP, command, source)))}
    return run_in_new_folder(APP, command, config, source, train)


def main_job(run_root: str) -> dict:
    """Quick KJV run: KN 5-gram, LSTM LM, their mixture; export checked against the Keras model."""
    from dlsuite.apps.language import config as language_config
    from dlsuite.apps.language import export, train

    config = dataclasses.replace(language_config.quick(), run_root=run_root)
    run_dir = create_run_dir(run_root, APP, "train", config)
    metrics = train.train_and_evaluate(config, run_dir)
    export_dir = export.export_run(run_dir)
    gap = export.max_export_gap(run_dir, export_dir, ["In the beginning God created the heaven.",
                                                      "And the LORD spake unto Moses, saying,", "xyzzy unknown words"])
    return {
        "run_dir": str(run_dir),
        "export_dir": str(export_dir),
        "metrics": {
            **{f"KJV test ppl, {k[9:]}": v for k, v in metrics.items() if k.startswith("test_ppl_")},
            "export max |log p - keras|": gap,
        },
    }

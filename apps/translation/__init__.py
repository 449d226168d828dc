"""The translation app: encoder-decoder NMT with Bahdanau attention, beam search, BLEU, alignments.

    dlsuite translation train | evaluate | finetune | predict | export

`run_command` maps each command to one function of train.py or export.py; `main_job` is this
app's part of `dlsuite all`.
"""

from __future__ import annotations

import dataclasses

from dlsuite.apps.commands import need_source, run_in_new_folder
from dlsuite.shared.runs import create_run_dir

APP = "translation"


def run_command(command: str, config, source: str | None, inputs: list[str]):
    from dlsuite.apps.translation import export, train

    if command == "predict":
        if not inputs:
            raise ValueError("'dlsuite translation predict' needs sentences (or text files, one sentence per line).")
        return train.translate_inputs(need_source(APP, command, source), inputs)
    if command == "export":
        return {"export_dir": str(export.export_run(need_source(APP, command, source)))}
    return run_in_new_folder(APP, command, config, source, train)


def main_job(run_root: str) -> dict:
    """Quick run on the embedded en-de corpus: attention model, greedy and beam BLEU/chrF on test
    pairs, then the export checked against the Keras model on test sentences."""
    from dlsuite.apps.translation import config as translation_config
    from dlsuite.apps.translation import data, export, train

    config = dataclasses.replace(translation_config.quick(), run_root=run_root)
    run_dir = create_run_dir(run_root, APP, "train", config)
    metrics = train.train_and_evaluate(config, run_dir)
    export_dir = export.export_run(run_dir)
    sentences = [s for s, _ in data.load_corpus(config).test[:8]]
    checks = export.export_agreement(run_dir, export_dir, sentences)
    shown = {k: v for k, v in metrics.items() if k.startswith("test_bleu") or k.startswith("test_chrf")}
    return {"run_dir": str(run_dir), "export_dir": str(export_dir), "metrics": {**shown, **checks}}

"""Speech: the fusion LMs adapted to the fine-tuning data's transcripts, by their weight.

    python benchmarks/speech_lm_adapt.py --run runs/speech/<finetune run> [--weights 0,1,3,10,30]

`dlsuite speech finetune` rebuilds the fusion LMs from the source run's LM text plus the adaptation
transcripts counted `adapt_lm_weight` times (train.adapted_lm; 0 keeps the source run's LMs).
For each weight this builds those LMs again for the fine-tuned model of RUN, lets the app choose
and tune the fusion on the data's validation split as finetune does (inference.tune: word LM with
its lexicon, else the character LM, else the word LM with any spelling, else no LM), then decodes
the test split: CER/WER of beam + LM against plain beam search. The acoustic model is the same
in every row, so the rows differ only by their LMs. Results:
benchmarks/results/speech_lm_adapt_<run>.{md,json}.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from distill_runs import write_results  # noqa: E402


def source_run(finetune_run: Path) -> Path:
    """The run a finetune run started from (its command.json's `--from`)."""
    import json

    command = json.loads((finetune_run / "command.json").read_text())
    source = command.get("source")
    if command.get("command") != "finetune" or not source:
        raise SystemExit(f"{finetune_run} is not a finetune run (command.json: {command.get('command')})")
    return Path(source)


def measure(app, run: Path, weights: list[int]) -> list[dict]:
    from dlsuite.apps.speech import inference, train

    config = app.trained_config(run)
    source = source_run(run)
    source_config = app.trained_config(source)
    model = app.load_model(run)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        splits, examples = train.prepare(config, Path(scratch), ("valid", "test"))
        adaptation = train.adaptation_set(splits, config)
        log_probs = inference.frame_log_probs(model, examples["test"])
        references = [u.transcript for u in examples["test"].utterances]
        for weight in weights:
            started = time.perf_counter()
            lms = (inference.load_lm(source) if weight == 0 else
                   train.adapted_lm(source_config, dataclasses.replace(config, adapt_lm_weight=weight),
                                    adaptation, None, Path(scratch)))
            built = time.perf_counter() - started
            fusion = inference.tune(model, examples["valid"], config, lms)
            hypotheses = inference.decode_all(log_probs, config, lms, fusion, progress=False)
            rows.append({"weight": weight, "lm_seconds": round(built, 1), **inference.fusion_metrics(fusion),
                         "valid_wer": fusion["valid_wer"], "valid_wer_beam": fusion["valid_wer_beam"],
                         **{f"{method}_{name}": value for method in ("beam", "beam_lm")
                            for name, value in inference.error_rates(references, hypotheses[method]).items()}})
            print(rows[-1], flush=True)
    return rows


def table(run: Path, rows: list[dict], adaptation_note: str) -> list[str]:
    lines = [f"{run}: fusion LMs rebuilt with the adaptation transcripts counted `weight` times "
             f"({adaptation_note}); 0 = the source run's LMs.", "",
             "| weight | chosen LM | alpha | beta | valid WER (beam) | test CER beam | test CER beam + LM | "
             "test WER beam | test WER beam + LM |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        chosen = (f"{r['lm_unit']}{' + lexicon' if r['lm_lexicon'] else ''}" if r["lm_used"] else "none (no gain)")
        lines.append(f"| {r['weight']} | {chosen} | {r['lm_alpha']} | {r['lm_beta']} | {r['valid_wer']:.3f} "
                     f"({r['valid_wer_beam']:.3f}) | {r['beam_cer']:.3f} | {r['beam_lm_cer']:.3f} | "
                     f"{r['beam_wer']:.3f} | {r['beam_lm_wer']:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="a speech finetune run folder")
    parser.add_argument("--weights", default="0,1,3,10,30", help="comma-separated adapt_lm_weight values")
    args = parser.parse_args()
    weights = [int(w) for w in args.weights.split(",")]
    if min(weights) < 0:
        raise SystemExit("weights must be >= 0")

    from dlsuite.apps.speech.app import SpeechApp

    app = SpeechApp()
    rows = measure(app, args.run, weights)
    config = app.trained_config(args.run)
    lines = table(args.run, rows, f"data={config.data}")
    print("\n".join(lines))
    write_results(f"speech_lm_adapt_{args.run.name}", lines, {"run": str(args.run), "rows": rows})


if __name__ == "__main__":
    main()

"""Word LM or character LM for fusion, in the text's domain and outside it, on one trained run.

    python benchmarks/speech_char_lm.py --run runs/speech/<train-run> [--data asterisk]

For each fusion LM the speech app can tune (inference.fusion_candidates: the word 4-gram with its
lexicon, the character n-gram, the word 4-gram with any spelling), alpha and beta are tuned on
the validation split of the run's synthetic corpus, as `train` does, and every setting decodes
the in-domain test split and the out-of-domain one (`test_ood`: sentences of a text domain that
neither the acoustic model nor the LMs saw). The question: does the open-vocabulary character LM
keep the fusion's gain outside the LM's domain, where the word LM's lexicon cannot spell the new
words? `--data asterisk` adds the real-speech test part, with weights tuned on its valid part.

A run trained before character LMs existed has no char_lm.arpa: it is built here from the run's
LM text (train.lm_sentences, the text its lm.arpa was built from) and written into the run, so
later `evaluate`/`finetune` of that run can choose it too.
Results: benchmarks/results/speech_char_lm_<run>.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from distill_runs import write_results  # noqa: E402


def ensure_char_lm(app, run: Path):
    """The run's FusionLMs, building and saving its character LM when the run has none."""
    from dlsuite.apps.speech import data, decode, inference, train
    from dlsuite.shared.ngram import write_arpa

    config = app.trained_config(run)
    if not (run / inference.CHAR_LM_FILE).is_file():
        started = time.perf_counter()
        char_lm = decode.CharLM.build(train.lm_sentences(config, data.load_splits(config)), config.char_lm_order)
        write_arpa(char_lm.model, run / inference.CHAR_LM_FILE)
        print(f"built {run / inference.CHAR_LM_FILE} (order {config.char_lm_order}) in "
              f"{time.perf_counter() - started:.0f} s")
    return inference.load_lm(run)


def compare(model, config, lms, valid, tests: dict) -> dict:
    """{candidate: {"alpha", "beta", "valid_wer", split: {decoder figures}}} for every fusion candidate,
    plus "beam" (no LM) on each split."""
    from dlsuite.apps.speech import decode, inference
    from dlsuite.apps.speech.transcripts import ALPHABET

    valid = inference.tuning_sample(valid, config.fusion_tune_utterances)  # the sample tune uses
    valid_log_probs = inference.frame_log_probs(model, valid)
    valid_refs = [u.transcript for u in valid.utterances]
    test_log_probs = {name: inference.frame_log_probs(model, split) for name, split in tests.items()}
    test_refs = {name: [u.transcript for u in split.utterances] for name, split in tests.items()}
    rows = {"beam": {name: inference.error_rates(test_refs[name], decode.decode_many(
        lps, ALPHABET, "beam", progress=False, beam_width=config.beam_width, beta=0.0)) for name, lps in
        test_log_probs.items()}}
    for unit, lexicon in inference.fusion_candidates(config, lms):
        lm = getattr(lms, unit)
        started = time.perf_counter()
        tuned = decode.tune_fusion(valid_log_probs, valid_refs, lm, ALPHABET, alphas=inference.FUSION_ALPHAS,
                                   betas=inference.FUSION_BETAS, beam_width=config.beam_width, lexicon=lexicon)
        row = {"alpha": tuned["alpha"], "beta": tuned["beta"], "valid_wer": tuned["wer"],
               "tune_seconds": round(time.perf_counter() - started, 1)}
        for name, lps in test_log_probs.items():
            hypotheses = decode.decode_many(lps, ALPHABET, "beam_lm", progress=False, beam_width=config.beam_width,
                                            lm=lm, alpha=tuned["alpha"], beta=tuned["beta"], lexicon=lexicon)
            row[name] = inference.error_rates(test_refs[name], hypotheses)
        rows[f"{unit}{' (lexicon)' if lexicon else ' (any spelling)'}"] = row
        print(rows)
    return rows


def table(title: str, rows: dict, splits) -> list[str]:
    lines = [title, "", "| fusion LM | alpha | beta | " + " | ".join(f"{s} CER | {s} WER" for s in splits) + " |",
             "|---|---|---|" + "---|---|" * len(splits)]
    for name, row in rows.items():
        cells = " | ".join(f"{row[s]['cer']:.3f} | {row[s]['wer']:.3f}" for s in splits)
        lines.append(f"| {name} | {row.get('alpha', '')} | {row.get('beta', '')} | {cells} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="a speech train run folder (synthetic corpus)")
    parser.add_argument("--data", choices=("asterisk",), default=None, help="also the real-speech set")
    args = parser.parse_args()

    import dataclasses

    from dlsuite.apps.speech import data
    from dlsuite.apps.speech.app import SpeechApp

    app = SpeechApp()
    config = app.trained_config(args.run)
    lms = ensure_char_lm(app, args.run)
    model = app.load_model(args.run)
    splits = data.load_splits(config)
    valid, test = (data.examples(getattr(splits, name), config, name) for name in ("valid", "test"))
    tests = {"test": test} | ({"test_ood": data.examples(splits.extra["test_ood"], config, "test_ood")}
                              if splits.extra.get("test_ood") else {})
    results = {"synthetic": compare(model, config, lms, valid, tests)}
    lines = table(f"{args.run}: weights tuned on the synthetic valid split", results["synthetic"], list(tests))
    if args.data:
        real_config = dataclasses.replace(config, data=args.data)
        real = data.load_splits(real_config)
        real_valid, real_test = (data.examples(getattr(real, name), real_config, name) for name in ("valid", "test"))
        results["real"] = compare(model, config, lms, real_valid, {"real_test": real_test})
        lines += ["", *table(f"weights tuned on the {args.data} valid part", results["real"], ["real_test"])]
    print("\n".join(lines))
    write_results(f"speech_char_lm_{args.run.name}", lines, {"run": str(args.run), "results": results})


if __name__ == "__main__":
    main()

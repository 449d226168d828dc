"""Speech: what each waveform augmentation step does for human speech, one training run per row.

    .venv/bin/python benchmarks/speech_augment_ablation.py [--epochs 8] [--rows all,none,-speed,...]
        [--settings rnn_units=160 ...]

Every row trains the quick preset (`dlsuite speech train --quick`, its corpus and model size, no
LM: the rows compare acoustic models, and the LM's tuning would cost each row minutes) with the
augmentation steps at their default probabilities (`all`), all off (`none`, the quick preset's
own setting), or all but one (`-speed`, `-noise`, `-reverb`, `-gain`, `-telephone`: what the mix
loses without that step). Then `dlsuite speech evaluate --from RUN data=asterisk`: greedy and beam
CER/WER on the real-speech test part (one human speaker, 8 kHz telephone prompts), zero-shot.
The synthetic figures are each run's own test split (held-out voices). One seed per row: on
243 test prompts a difference under about 0.01 CER is within the noise between seeds.
Results: benchmarks/results/speech_augment_ablation.{md,json}.
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

STEPS = ("speed", "noise", "reverb", "gain", "telephone")
ROWS = ("all", "none", *(f"-{step}" for step in STEPS))


def augmentation_settings(row: str) -> list[str]:
    """key=value overrides of the quick preset for one row: each step's probability."""
    from dlsuite.apps.speech.config import SpeechConfig

    defaults = SpeechConfig()
    if row not in ROWS:
        raise SystemExit(f"unknown row '{row}'; rows are {', '.join(ROWS)}")
    on = set() if row == "none" else set(STEPS) - {row.lstrip("-")}
    return [f"{step}_probability={getattr(defaults, f'{step}_probability') if step in on else 0.0}" for step in STEPS]


def run_row(app, row: str, epochs: int, settings: list[str]) -> dict:
    overrides = [f"epochs={epochs}", "lm=none", *settings, *augmentation_settings(row)]
    started = time.perf_counter()
    trained = app.run("train", app.resolve_config("train", overrides=overrides, quick=True))
    run = Path(trained["run_dir"])
    real = app.run("evaluate", app.resolve_config("evaluate", run, overrides=["data=asterisk"]), run)
    return {"row": row, "run": str(run), "overrides": overrides, "train_seconds": trained["train_seconds"],
            "seconds": round(time.perf_counter() - started, 1),
            **{f"synthetic_{k}": trained[f"test_{k}"] for k in ("cer_greedy", "cer_beam", "wer_beam")},
            **{f"real_{k}": real[f"test_{k}"] for k in ("cer_greedy", "cer_beam", "wer_greedy", "wer_beam")}}


def table(results: list[dict], epochs: int, settings: list[str]) -> list[str]:
    base = next((r for r in results if r["row"] == "all"), None)
    lines = [f"Quick preset, {epochs} epochs, lm=none{', ' + ' '.join(settings) if settings else ''}; "
             "real = asterisk test part zero-shot, synthetic = the run's own test split.", "",
             "| augmentation | real CER greedy | real CER beam | real WER beam | vs all (real CER beam) | "
             "synthetic CER greedy | synthetic CER beam | train s |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        delta = f"{r['real_cer_beam'] - base['real_cer_beam']:+.3f}" if base and r is not base else ""
        lines.append(f"| {r['row']} | {r['real_cer_greedy']:.3f} | {r['real_cer_beam']:.3f} | {r['real_wer_beam']:.3f} "
                     f"| {delta} | {r['synthetic_cer_greedy']:.3f} | {r['synthetic_cer_beam']:.3f} | "
                     f"{r['train_seconds']:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of every row (the quick preset's 8)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows from {','.join(ROWS)}")
    parser.add_argument("--settings", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more train settings for every row, e.g. rnn_units=160")
    args = parser.parse_args()
    rows = [row.strip() for row in args.rows.split(",") if row.strip()]
    for row in rows:
        augmentation_settings(row)  # an unknown row fails before any training

    from dlsuite.apps.speech.app import SpeechApp

    app, results = SpeechApp(), []
    for row in rows:
        results.append(run_row(app, row, args.epochs, args.settings))
        print("\n".join(table(results, args.epochs, args.settings)), flush=True)
        # after every row, so that a stopped benchmark keeps what it measured
        write_results("speech_augment_ablation", table(results, args.epochs, args.settings),
                      {"epochs": args.epochs, "settings": args.settings, "rows": results})


if __name__ == "__main__":
    main()

"""Each output layer trained for many epochs: test perplexity and the wall time to get there (KJV).

    .venv/bin/python benchmarks/output_layers_convergence.py --epochs 6 [--outputs sampled,nce,...]

Same runs as benchmarks/output_layers_perplexity.py (the quick preset's LSTM, only `output`
changed, no mixture), but with a longer cosine schedule, so that every layer gets near its own
plateau. For each layer: its exact test perplexity at the end, the validation perplexity after each
epoch (exp of the epoch's mean exact validation NLL; a ranking run's is the uncalibrated softmax,
its test figure the calibrated one), and the wall time until the validation perplexity first came
within 2% of its last value ("time to converge"). Rows are appended to --json as each run ends, so
a run cut short keeps the layers it finished; the markdown table goes to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

from output_layers_perplexity import train_each_output  # beside this script

OUTPUTS = ("sampled", "ranking", "nce", "hierarchical_classes", "huffman", "shortlist", "full")
WITHIN = 0.02  # "converged": validation perplexity within 2% of the run's last one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--outputs", default=",".join(OUTPUTS))
    parser.add_argument("--json", default="benchmarks/results/output_layers_convergence.json")
    parser.add_argument("--out", default="benchmarks/results/output_layers_convergence.md")
    parser.add_argument("--ranking-loss", choices=("hinge", "squared_hinge", "logistic"), help="ranking: the pairwise loss (default: the preset's)")
    args = parser.parse_args()
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(f"$ {command}", flush=True)

    rows = []
    for config, metrics in train_each_output(args.outputs.split(","), args.epochs, ranking_loss=args.ranking_loss):
        rows.append(summarize(config.output, metrics))
        if config.output == "ranking":
            rows[-1]["output"] = f"ranking ({config.ranking_loss})"
        print(f"  {config.output}: {rows[-1]}", flush=True)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    report = markdown(command, args.epochs, rows)
    print(report)
    Path(args.out).write_text(report)


def summarize(output: str, metrics: dict) -> dict:
    """One layer's figures from the app's metrics.json."""
    valid_ppl = [math.exp(loss) for loss in metrics["val_loss_per_epoch"]]
    seconds = metrics["epoch_end_seconds"]
    converged = next(i for i, ppl in enumerate(valid_ppl) if ppl <= valid_ppl[-1] * (1 + WITHIN))
    return {"output": output, "test_ppl": metrics[f"test_ppl_lstm_{output}"],
            "valid_ppl_per_epoch": [round(p, 2) for p in valid_ppl], "epoch_end_seconds": seconds,
            "converged_epoch": converged + 1, "seconds_to_converge": seconds[converged],
            "train_seconds": metrics["train_seconds"]}


def markdown(command: str, epochs: int, rows: list[dict]) -> str:
    reference = {row["output"]: row["test_ppl"] for row in rows}
    lines = ["| output | test ppl | / full | / sampled | valid ppl by epoch | epochs to within 2% | s to within 2% | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ratios = [f"{row['test_ppl'] / reference[k]:.3f}" if k in reference else "-" for k in ("full", "sampled")]
        curve = ", ".join(f"{p:.1f}" for p in row["valid_ppl_per_epoch"])
        lines.append(f"| {row['output']} | {row['test_ppl']:.2f} | {ratios[0]} | {ratios[1]} | {curve} | "
                     f"{row['converged_epoch']} | {row['seconds_to_converge']:.0f} | {row['train_seconds']:.0f} |")
    return (f"$ {command}\n\nKJV (vocab_min_count=2), LSTM 256, embeddings 128, batch 64, AdamW 3e-3 warm-up cosine over "
            f"{epochs} epochs, 2 CPU cores.\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

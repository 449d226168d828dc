"""Test perplexity of the LSTM LM on the KJV with each output layer, at the same training budget.

    .venv/bin/python benchmarks/output_layers_perplexity.py --epochs 1 [--outputs full,sampled,...]

Every run is `dlsuite language train` with the quick preset and only `output` changed (no mixture,
no class model), so the figures differ only by the output layer. Evaluation is always the exact,
normalized probability (shortlist: with the n-gram for the tail). Prints a markdown table with each
layer's perplexity and seconds per epoch as ratios against full softmax, and writes it to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import tempfile
import time
from pathlib import Path

OUTPUTS = ("full", "shortlist", "hierarchical_classes", "huffman", "sampled", "nce", "ranking")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--outputs", default=",".join(OUTPUTS))
    parser.add_argument("--out", default="benchmarks/results/output_layers_perplexity.md")
    args = parser.parse_args()
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(f"$ {command}", flush=True)

    from dlsuite.apps.language import config as language_config
    from dlsuite.apps.language.app import LanguageApp

    rows = []
    with tempfile.TemporaryDirectory() as root:
        for output in args.outputs.split(","):
            config = dataclasses.replace(language_config.quick(), output=output, epochs=args.epochs, mixture=False,
                                         class_ngram_classes=0, run_root=root)
            start = time.perf_counter()
            metrics = LanguageApp().run("train", config)
            rows.append((output, metrics[f"test_ppl_lstm_{output}"], metrics["train_seconds"] / args.epochs,
                         time.perf_counter() - start))
            print(f"  {output:>20}: test ppl {rows[-1][1]:8.2f}, {rows[-1][2]:6.1f} s/epoch", flush=True)
    full_ppl, full_time = next(((p, t) for o, p, t, _ in rows if o == "full"), (None, None))
    lines = ["| output | test ppl | ppl / full | s per epoch | speed-up vs full |", "|---|---|---|---|---|"]
    for output, ppl, seconds, _ in rows:
        ratio = f"{ppl / full_ppl:.3f}" if full_ppl else "-"
        speed = f"{full_time / seconds:.2f}x" if full_time else "-"
        lines.append(f"| {output} | {ppl:.2f} | {ratio} | {seconds:.0f} | {speed} |")
    report = (f"$ {command}\n\nKJV (vocab_min_count=2), LSTM 256, embeddings 128, batch 64, AdamW 3e-3 warm-up "
              f"cosine, {args.epochs} epoch(s), 2 CPU cores.\n\n" + "\n".join(lines) + "\n")
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)


if __name__ == "__main__":
    main()

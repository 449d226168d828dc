"""Test perplexity of the LSTM LM on the KJV with each output layer, at the same training budget.

    .venv/bin/python benchmarks/output_layers_perplexity.py --epochs 1 [--outputs full,sampled,...]

Every run is `dlsuite language train` with the quick preset and only `output` changed (no mixture,
no class model), so the figures differ only by the output layer. Evaluation is always the exact,
normalized probability (shortlist: with the n-gram for the tail). Prints a markdown table with each
layer's perplexity and seconds per epoch as ratios against full softmax, and writes it to --out.

The ranking loss's scores have no probability scale: the app calibrates a ranking run on the
validation split (P(w | h) = softmax(beta a + gamma log unigram), `RankingSoftmax.calibrate`) and
reports that perplexity as the run's. A ranking run gets two more rows, exactly normalized too: the
plain softmax of its scores (uncalibrated), and one temperature fitted on the validation split
(`calibrate(prior=False)`), the calibration without the unigram prior.
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
    parser.add_argument("--num-samples", type=int, help="sampled | nce | ranking (default: the preset's)")
    parser.add_argument("--proposal-power", type=float, help="sampled | nce | ranking (default: the preset's)")
    parser.add_argument("--num-classes", type=int, help="hierarchical_classes (default: the layer's)")
    parser.add_argument("--margin", type=float, help="ranking: the hinge's margin (default: the preset's)")
    parser.add_argument("--ranking-loss", choices=("hinge", "squared_hinge", "logistic"), help="ranking: the pairwise loss (default: the preset's)")
    args = parser.parse_args()
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(f"$ {command}", flush=True)

    rows = []
    sampling = {"num_samples": args.num_samples, "proposal_power": args.proposal_power,
                "ranking_margin": args.margin, "ranking_loss": args.ranking_loss, "num_classes": args.num_classes}
    start = time.perf_counter()
    for config, metrics in train_each_output(args.outputs.split(","), args.epochs, **sampling):
        output = config.output
        seconds = metrics["train_seconds"] / args.epochs
        if output == "ranking":
            rows.append(("ranking, uncalibrated softmax(a)", metrics["test_ppl_lstm_ranking_uncalibrated"],
                         seconds, 0))
            temperature, ppl = temperature_test_perplexity(config, Path(metrics["run_dir"]))
            rows.append((f"ranking, one temperature (T = {temperature:.3f})", ppl, seconds, 0))
            beta, gamma = metrics["ranking_calibration"].values()
            output = f"ranking, calibrated softmax(beta a + gamma log u) (beta = {beta:.3f}, gamma = {gamma:.3f})"
            for row in rows[-2:]:
                print(f"  {row[0]}: test ppl {row[1]:8.2f}", flush=True)
        if output == "hierarchical_classes":
            output += f" ({args.num_classes or 'default'} classes)"
        rows.append((output, metrics[f"test_ppl_lstm_{config.output}"], seconds, time.perf_counter() - start))
        start = time.perf_counter()
        print(f"  {output:>20}: test ppl {rows[-1][1]:8.2f}, {rows[-1][2]:6.1f} s/epoch", flush=True)
    full_ppl, full_time = next(((p, t) for o, p, t, _ in rows if o == "full"), (None, None))
    lines = ["| output | test ppl | ppl / full | s per epoch | speed-up vs full |", "|---|---|---|---|---|"]
    for output, ppl, seconds, _ in rows:
        ratio = f"{ppl / full_ppl:.3f}" if full_ppl else "-"
        speed = f"{full_time / seconds:.2f}x" if full_time else "-"
        lines.append(f"| {output} | {ppl:.2f} | {ratio} | {seconds:.0f} | {speed} |")
    report = (f"$ {command}\n\nKJV (vocab_min_count=2), LSTM 256, embeddings 128, batch 64, AdamW 3e-3 warm-up "
              f"cosine, {args.epochs} epoch(s), num_samples {config.num_samples}, proposal_power "
              f"{config.proposal_power}, ranking margin {config.ranking_margin}, 2 CPU cores.\n\n"
              + "\n".join(lines) + "\n")
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)


def train_each_output(outputs, epochs: int, **overrides):
    """Yields (config, metrics) of one `dlsuite language train` per output layer: the quick preset
    with only `output` (and the given non-None overrides) changed, no mixture, no class n-gram, in
    temporary run folders (a run's folder lasts until the next one starts)."""
    from dlsuite.apps.language import config as language_config
    from dlsuite.apps.language.app import LanguageApp

    with tempfile.TemporaryDirectory() as root:
        for output in outputs:
            config = dataclasses.replace(language_config.quick(), output=output, epochs=epochs, mixture=False,
                                         class_ngram_classes=0, run_root=root,
                                         **{k: v for k, v in overrides.items() if v is not None})
            yield config, LanguageApp().run("train", config)


def temperature_test_perplexity(config, run_dir: Path) -> tuple[float, float]:
    """(T, test perplexity) of a ranking run with one temperature fitted on the validation split
    instead of the app's (beta, gamma)."""
    from dlsuite.apps.language import data, inference, train
    from dlsuite.apps.language.app import LanguageApp
    from dlsuite.apps.language.mixture import perplexity

    _, splits, _ = train.prepare(config, run_dir, vocab=data.load_vocabulary(run_dir))
    model = LanguageApp().load_model(run_dir)
    calibration = model.vocabulary_output.calibrate(*inference.hidden_states(model, splits["valid"]), prior=False)
    return 1 / calibration["beta"], perplexity(inference.neural_token_log_probs(model, splits["test"]))


if __name__ == "__main__":
    main()

"""A trained speech run on human speech, against pocketsphinx, in one run.

    python benchmarks/speech_real.py --run runs/speech/<train-run> [--finetune-epochs 10]
        [--finetune-settings batch_size=16 learning_rate=1e-3]

On the embedded real-speech set (`data=asterisk`: Asterisk's telephone prompts, one human
speaker, 8 kHz; apps/speech/asterisk_corpus.py):
- zero-shot: `dlsuite speech evaluate --from RUN data=asterisk` (every decoder; the LM weights
  tuned again on the set's validation part, i.e. on data like the target);
- adapted: `dlsuite speech finetune --from RUN data=asterisk` on the set's train part (its
  minutes of audio reported), then the same test part, and the run's own synthetic test split
  again, to show what adaptation costs there;
- the peer: pocketsphinx 5 with its bundled US-English model (16 kHz, CMUDict, its 3-gram LM) on
  the same test utterances, at the two settings its documentation gives for telephone audio:
  upsampled to the model's 16 kHz, and native 8 kHz with `samprate=8000, nfft=256` and the
  model's filter bank cut at 3.5 kHz (`-upperf` in feat.params; CMUSphinx FAQ). Two processes.
With `--rehearsal-minutes M`, a second fine-tune mixes M minutes of the run's own training data
into the adaptation set (`rehearsal_minutes`: does the model keep its synthetic voices?);
`--rehearsal-only` skips the plain one. The synthetic "before" figures of a train run are its own
(metrics.json), not measured again.
Results: benchmarks/results/speech_real.{md,json} (`--no-peer`: speech_real_finetunes_<run>.*).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jiwer  # noqa: E402
import numpy as np  # noqa: E402
from distill_runs import write_results  # noqa: E402

DECODERS = ("greedy", "beam", "beam_lm")


def pocketsphinx_decoder(rate: int):
    """pocketsphinx's Decoder for 16 kHz input, or for 8 kHz with its model's filter bank lowered
    below the 4 kHz Nyquist limit (the model's feat.params sets -upperf 6800, which 8 kHz refuses)."""
    import pocketsphinx

    if rate == 16000:
        return pocketsphinx.Decoder(loglevel="FATAL")
    hmm = Path(tempfile.mkdtemp(prefix="ps-8k-")) / "en-us"
    shutil.copytree(Path(pocketsphinx.get_model_path()) / "en-us" / "en-us", hmm)
    params = hmm / "feat.params"
    params.write_text(params.read_text().replace("-upperf 6800", "-upperf 3500"))
    return pocketsphinx.Decoder(hmm=str(hmm), samprate=8000, nfft=256, loglevel="FATAL")


def pocketsphinx_transcripts(args: tuple[list[str], int]) -> tuple[list[str], float]:
    """Transcripts of the files at `rate` (resampled with soxr where the file differs), and the
    seconds it took."""
    import soundfile as sf
    import soxr

    paths, rate = args
    decoder, texts, start = pocketsphinx_decoder(rate), [], time.perf_counter()
    for path in paths:
        audio, file_rate = sf.read(path, dtype="float32")
        audio = audio.mean(axis=1) if audio.ndim > 1 else audio
        if file_rate != rate:
            audio = soxr.resample(audio, file_rate, rate, quality="HQ")
        decoder.start_utt()
        decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        texts.append(hypothesis.hypstr.lower() if hypothesis else "")
    return texts, time.perf_counter() - start


def error_rates(metrics: dict, prefix: str) -> dict:
    """{decoder: (CER, WER)} from an evaluate/finetune result's `<prefix>_cer_<decoder>` figures."""
    return {d: (metrics[f"{prefix}_cer_{d}"], metrics[f"{prefix}_wer_{d}"]) for d in DECODERS
            if f"{prefix}_cer_{d}" in metrics}


def synthetic_figures(app, run: Path, data: str) -> dict:
    """The run's own test figures on its synthetic corpus: from its metrics.json when it is a train
    run (it measured them at the end of training), else by `evaluate` (minutes at the default size)."""
    path = run / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    if "test_cer_greedy" not in metrics:
        metrics = app.run("evaluate", app.resolve_config("evaluate", run, overrides=[f"data={data}"]), run)
    return error_rates(metrics, "test")


def run_ours(app, run: Path, finetune_settings: list[str], rehearsal_minutes: float = 0.0,
             plain_finetune: bool = True) -> dict:
    """Zero-shot and fine-tuned figures on the real test part and the run's synthetic test split;
    with `rehearsal_minutes`, a fine-tune that mixes in that much of the run's training data (beside
    the plain one unless plain_finetune is False)."""
    data = app.trained_config(run).data
    zero_shot = app.run("evaluate", app.resolve_config("evaluate", run, overrides=["data=asterisk"]), run)
    ours = {"zero_shot": error_rates(zero_shot, "test"), "synthetic_before": synthetic_figures(app, run, data),
            "synthetic_data": data, "zero_shot_fusion": {k: v for k, v in zero_shot.items() if k.startswith("lm_")},
            "finetunes": {}}
    variants = {"adapted": []} if plain_finetune or not rehearsal_minutes else {}
    variants |= {"rehearsed": [f"rehearsal_minutes={rehearsal_minutes}"]} if rehearsal_minutes else {}
    for name, extra in variants.items():
        overrides = ["data=asterisk", *extra, *finetune_settings]
        adapted = app.run("finetune", app.resolve_config("finetune", run, overrides=overrides), run)
        adapted_run = Path(adapted["run_dir"])
        synthetic_after = app.run("evaluate", app.resolve_config("evaluate", adapted_run, overrides=[f"data={data}"]),
                                  adapted_run)
        ours["finetunes"][name] = {"real": error_rates(adapted, "test"), "synthetic": error_rates(synthetic_after, "test"),
                                   "run": str(adapted_run), "train_seconds": adapted.get("train_seconds"),
                                   **{k: adapted[k] for k in ("adapt_minutes", "adapt_utterances", "rehearsal_minutes",
                                                              "rehearsal_utterances") if k in adapted}}
    ours |= {k: next(iter(ours["finetunes"].values()))[k] for k in ("adapt_minutes", "adapt_utterances")}
    return ours


def run_pocketsphinx(test) -> dict:
    references = [u.transcript for u in test]
    paths = [u.audio for u in test]
    with ProcessPoolExecutor(2) as pool:
        outputs = dict(zip((16000, 8000), pool.map(pocketsphinx_transcripts, [(paths, 16000), (paths, 8000)]),
                           strict=True))
    return {rate: {"cer": jiwer.cer(references, texts), "wer": jiwer.wer(references, texts),
                   "seconds_per_utterance": seconds / len(paths), "samples": texts[:5]}
            for rate, (texts, seconds) in outputs.items()}


def report(ours: dict, peer: dict, test, settings: dict) -> list[str]:
    minutes = sum(u.duration for u in test) / 60
    lines = [f"Real-speech test part: {len(test)} utterances, {minutes:.1f} min (asterisk, one human speaker, 8 kHz).",
             f"Adaptation: {ours['adapt_utterances']} utterances, {ours['adapt_minutes']:.1f} min of audio.", "",
             "| system | decoder | real CER | real WER | synthetic CER | synthetic WER |", "|---|---|---|---|---|---|"]
    rows = [("ours, zero-shot", ours["zero_shot"], ours["synthetic_before"])]
    for tuned in ours["finetunes"].values():
        label = "ours, fine-tuned on the adaptation part"
        if "rehearsal_minutes" in tuned:
            label += f" + {tuned['rehearsal_minutes']:.1f} min of its training data (rehearsal)"
        rows.append((label, tuned["real"], tuned["synthetic"]))
    for name, real, synthetic in rows:
        for decoder, (cer, wer) in real.items():
            s_cer, s_wer = synthetic.get(decoder, (float("nan"),) * 2)
            lines.append(f"| {name} | {decoder} | {cer:.3f} | {wer:.3f} | {s_cer:.3f} | {s_wer:.3f} |")
    for rate, figures in peer.items():
        lines.append(f"| pocketsphinx 5.1.1, en-us, {rate // 1000} kHz | its 3-gram LM | {figures['cer']:.3f} | "
                     f"{figures['wer']:.3f} | | |")
    lines += ["", f"settings: {settings}"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="a speech train run folder")
    parser.add_argument("--finetune-epochs", type=int, default=None,
                        help="default: the speech app's own (SpeechApp.finetune_defaults)")
    parser.add_argument("--finetune-settings", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more finetune settings, e.g. batch_size=16 learning_rate=1e-3")
    parser.add_argument("--zero-shot-only", action="store_true",
                        help="only `evaluate data=asterisk` (no pocketsphinx, no fine-tuning): to compare runs")
    parser.add_argument("--rehearsal-minutes", type=float, default=0.0,
                        help="also fine-tune with this many minutes of the run's training data mixed in")
    parser.add_argument("--no-peer", action="store_true", help="skip pocketsphinx (its figures: an earlier run)")
    parser.add_argument("--rehearsal-only", action="store_true",
                        help="with --rehearsal-minutes: only the fine-tune with rehearsal, not the plain one")
    args = parser.parse_args()

    from dlsuite.apps.speech.app import SpeechApp
    from dlsuite.apps.speech.asterisk_corpus import build_asterisk_corpus

    app = SpeechApp()
    config = app.trained_config(args.run)
    test = [u for u in build_asterisk_corpus(config.cache_dir).test if u.duration <= config.max_seconds]
    if args.zero_shot_only:
        result = app.run("evaluate", app.resolve_config("evaluate", args.run, overrides=["data=asterisk"]), args.run)
        lines = [f"{args.run}, zero-shot on the real-speech test part ({len(test)} utterances):", "",
                 "| decoder | CER | WER |", "|---|---|---|",
                 *(f"| {d} | {cer:.3f} | {wer:.3f} |" for d, (cer, wer) in error_rates(result, "test").items())]
        print("\n".join(lines))
        write_results(f"speech_real_zero_shot_{args.run.name}", lines, {"run": str(args.run), "metrics": result})
        return
    # pocketsphinx first: it needs no TensorFlow, and its figures come even if ours fail
    peer = {} if args.no_peer else run_pocketsphinx(test)
    finetune_settings = ([f"epochs={args.finetune_epochs}"] if args.finetune_epochs else []) + args.finetune_settings
    ours = run_ours(app, args.run, finetune_settings, args.rehearsal_minutes, not args.rehearsal_only)
    tuned = app.resolve_config("finetune", args.run, overrides=["data=asterisk", *finetune_settings])
    settings = {"run": str(args.run), "finetune_epochs": tuned.epochs, "finetune_batch_size": tuned.batch_size,
                "finetune_learning_rate": tuned.learning_rate, "finetune_settings": finetune_settings,
                "test_utterances": len(test), "rehearsal_minutes": args.rehearsal_minutes,
                "zero_shot_fusion": ours["zero_shot_fusion"]}
    lines = report(ours, peer, test, settings)
    print("\n".join(lines))
    name = "speech_real" if peer else f"speech_real_finetunes_{args.run.name}"
    write_results(name, lines, {"settings": settings, "ours": ours, "pocketsphinx": peer})


if __name__ == "__main__":
    main()

"""n-gram estimation: dlsuite's vectorized modified Kneser-Ney against KenLM's lmplz.

    .venv/bin/python benchmarks/ngram_vs_kenlm.py [--orders 3 5] [--repeats 3] [--out benchmarks/results/ngram_vs_kenlm.md]

On the KJV train split (`load_corpus('kjv')`, ~712k words), for each order, in one run:
  * time, best of --repeats: ours = `build_ngram_model` (count + smooth) and, reported apart,
    `write_arpa`; end to end = encode the text + build + write, what lmplz does; KenLM = wall
    time of the `lmplz -o N -S 20%` subprocess writing its ARPA file to a temporary folder
    (CPU times, from the OS for subprocesses, are shown too: this machine may be shared);
  * the user's view of the same job: the `dlsuite language ngram <train.txt> order=N output=..`
    subprocess (text file in, ARPA file out) against lmplz on the same file, with the CLI's
    import time (`python -c "import dlsuite.apps.cli, dlsuite.apps.language.ngram_command"`: what
    the command imports, no TensorFlow) measured apart and
    the command's own `build_seconds`; its file must be byte for byte the one `write_arpa` wrote;
  * agreement of the two ARPA files (both loaded with `read_arpa`): the same n-gram set, and
    max |delta log10 p| and max |delta log10 back-off| over all n-grams;
  * test-split perplexity: ours from our scorer, KenLM's from `query -v summary` on its file.
Prints a Markdown table of absolute numbers and ratios to lmplz, and writes it with the
command to --out. KenLM comes from `bash scripts/build_kenlm.sh` (exit 2 if it is missing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dlsuite.pipelines.text import load_corpus
from dlsuite.shared.ngram import build_ngram_model, read_arpa, write_arpa

ROOT = Path(__file__).resolve().parents[1]
KENLM = ROOT / ".kenlm" / "bin"
SPECIALS = ["<unk>", "<s>", "</s>"]
# The installed `dlsuite` script next to this Python (a venv's bin/), else the module it runs.
_SCRIPT = Path(sys.executable).with_name("dlsuite")
DLSUITE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "dlsuite.apps.cli"]
COMMAND_IMPORTS = "import dlsuite.apps.cli, dlsuite.apps.language.ngram_command"  # what the command loads


def encode(lines: list[str]) -> tuple[list[np.ndarray], list[str]]:
    """Sentences -> id arrays over SPECIALS + the sorted words (a dict applied in C)."""
    words = " ".join(lines).split()
    tokens = SPECIALS + sorted(set(words))
    ids = {t: i for i, t in enumerate(tokens)}
    flat = np.fromiter(map(ids.__getitem__, words), np.int64, len(words))
    lengths = np.fromiter(map(len, map(str.split, lines)), np.int64, len(lines))
    return np.split(flat, np.cumsum(lengths)[:-1]), tokens


def best_of(repeats: int, fn) -> tuple[float, float, object]:
    """(best wall seconds, CPU seconds of that run, its result) over `repeats` calls."""
    best = (float("inf"), 0.0, None)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best[0]:
            best = (wall, cpu, result)
    return best


def run_timed(argv: list[str], stdin: Path | None = None, stdout: Path | None = None) -> tuple[float, float, bytes]:
    """Wall and CPU (user + sys) seconds of one subprocess, and its stdout unless sent to a file."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as source, open(stdout or os.devnull, "wb") as sink:
        done = subprocess.run(argv, stdin=source, stdout=sink if stdout else subprocess.PIPE,
                              stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.stdout or b""


def run_lmplz(order: int, text: Path, arpa: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one `lmplz -o N -S 20%` run, text on stdin, ARPA on stdout."""
    argv = [str(KENLM / "lmplz"), "-o", str(order), "-S", "20%", "-T", str(arpa.parent)]
    return run_timed(argv, stdin=text, stdout=arpa)[:2]


def run_command(order: int, text: Path, arpa: Path) -> tuple[float, float, float]:
    """Wall and CPU seconds of one `dlsuite language ngram` run, and the build_seconds it reports."""
    wall, cpu, out = run_timed([*DLSUITE, "language", "ngram", str(text), f"order={order}", f"output={arpa}"])
    return wall, cpu, json.loads(out)["build_seconds"]


def kenlm_perplexity(arpa: Path, text: Path) -> float:
    with open(text, "rb") as stdin:
        out = subprocess.run([str(KENLM / "query"), "-v", "summary", str(arpa)], stdin=stdin,
                             capture_output=True, check=True).stdout.decode()
    return float(re.search(r"Perplexity including OOVs:\s*([0-9.]+)", out).group(1))


def ngram_columns(model, n: int) -> np.ndarray:
    """The word ids of every n-gram of order n+1, as [entries, n+1]."""
    columns, index = [model.tables[n].word], model.tables[n].context
    for m in range(n - 1, -1, -1):
        columns.insert(0, model.tables[m].word[index])
        index = model.tables[m].context[index]
    return np.stack(columns, axis=1)


def compare_arpa(ours, kenlm) -> dict:
    """Same n-gram set? Max |delta| of log10 p and back-off over KenLM's n-grams found in ours."""
    ids = {t: i for i, t in enumerate(ours.tokens)}
    to_ours = np.array([ids.get(t, -1) for t in kenlm.tokens])
    same = ours.size() == kenlm.size() and bool((to_ours >= 0).all())
    max_p = max_b = 0.0
    for n in range(min(ours.order, kenlm.order)):
        words = to_ours[ngram_columns(kenlm, n)]
        index = np.zeros(len(words), np.int64)
        for m in range(n + 1):  # walk down our tables: the row of (w1 .. wm) in order m
            index = ours.tables[m].lookup(index, words[:, m])
        found = (index >= 0) & (words >= 0).all(axis=1)
        same &= bool(found.all())
        max_p = max(max_p, float(np.abs(ours.log_probs[n][index[found]] - kenlm.log_probs[n][found]).max(initial=0.0)))
        max_b = max(max_b, float(np.abs(ours.log_backoffs[n][index[found]] - kenlm.log_backoffs[n][found]).max(initial=0.0)))
    return {"same_ngrams": same, "max_dp": max_p, "max_db": max_b}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs for every timing")
    parser.add_argument("--out", default="benchmarks/results/ngram_vs_kenlm.md")
    args = parser.parse_args()
    command = "python " + shlex.join(["benchmarks/ngram_vs_kenlm.py", *sys.argv[1:]])
    print(command, flush=True)
    if not (KENLM / "lmplz").exists() or not (KENLM / "query").exists():
        print(f"KenLM's lmplz/query are not in {KENLM}: run `bash scripts/build_kenlm.sh` first.", file=sys.stderr)
        sys.exit(2)

    corpus = load_corpus("kjv")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_txt, test_txt = tmp / "train.txt", tmp / "test.txt"
        train_txt.write_text("\n".join(corpus.train) + "\n")
        test_txt.write_text("\n".join(corpus.test) + "\n")
        encode_s, encode_cpu, (sentences, tokens) = best_of(args.repeats, lambda: encode(corpus.train))
        imports = min(run_timed([sys.executable, "-c", COMMAND_IMPORTS])[:2] for _ in range(args.repeats))
        for order in args.orders:
            ours_arpa, kenlm_arpa = tmp / f"ours.{order}.arpa", tmp / f"kenlm.{order}.arpa"
            command_arpa = tmp / f"command.{order}.arpa"
            build_s, build_cpu, model = best_of(
                args.repeats, lambda order=order: build_ngram_model(sentences, tokens, order))
            write_s, write_cpu, _ = best_of(args.repeats, lambda model=model, path=ours_arpa: write_arpa(model, path))
            lmplz = min(run_lmplz(order, train_txt, kenlm_arpa) for _ in range(args.repeats))
            ours_command = min(run_command(order, train_txt, command_arpa) for _ in range(args.repeats))
            read_s, read_cpu, kenlm = best_of(args.repeats, lambda path=kenlm_arpa: read_arpa(path))
            agreement = compare_arpa(read_arpa(ours_arpa), kenlm)
            row = {"order": order, "ngrams": sum(model.size().values()), "build": build_s, "build_cpu": build_cpu,
                   "write": write_s, "write_cpu": write_cpu, "end_to_end": encode_s + build_s + write_s,
                   "end_to_end_cpu": encode_cpu + build_cpu + write_cpu, "lmplz": lmplz[0], "lmplz_cpu": lmplz[1],
                   "command": ours_command[0], "command_cpu": ours_command[1], "command_build": ours_command[2],
                   "import": imports[0], "import_cpu": imports[1],
                   "command_file_same": command_arpa.read_bytes() == ours_arpa.read_bytes(),
                   "read": read_s, "read_cpu": read_cpu, **agreement,
                   "ppl_ours": model.perplexity(model.encode(corpus.test)),
                   "ppl_kenlm": kenlm_perplexity(kenlm_arpa, test_txt)}
            rows.append(row)
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)

    table = markdown(command, rows, corpus, sentences, tokens, args.repeats, encode_s)
    print("\n" + table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# n-gram estimation: dlsuite vs KenLM's lmplz\n\n{table}")
    print(f"wrote {out}")
    return rows


def markdown(command: str, rows: list[dict], corpus, sentences, tokens, repeats: int, encode_s: float) -> str:
    """The two result tables: the library against lmplz, then the `dlsuite language ngram` command."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"`{command}`",
        "",
        f"KJV train split: {len(corpus.train):,} verses, {sum(map(len, sentences)):,} words, {len(tokens):,} types; "
        f"test split {len(corpus.test):,} verses. {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(load average {load} at the end), Python {platform.python_version()}, NumPy {np.__version__}. "
        f"Times: best of {repeats}, wall seconds (CPU seconds in brackets). Ours end to end = encode the text "
        f"({encode_s:.2f} s) + build + write_arpa, like `lmplz -o N -S 20%` (text in, ARPA file out).",
        "",
        "| order | n-grams | ours build_ngram_model | ours write_arpa | ours end to end | lmplz | lmplz / ours end to end "
        "| read_arpa (KenLM's file) | same n-gram set | max abs diff log10 p | max abs diff log10 back-off "
        "| test ppl ours | test ppl KenLM |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['order']} | {r['ngrams']:,} | {r['build']:.2f} s ({r['build_cpu']:.2f}) "
            f"| {r['write']:.2f} s ({r['write_cpu']:.2f}) | {r['end_to_end']:.2f} s ({r['end_to_end_cpu']:.2f}) "
            f"| {r['lmplz']:.2f} s ({r['lmplz_cpu']:.2f}) | {r['lmplz'] / r['end_to_end']:.2f}x "
            f"| {r['read']:.2f} s ({r['read_cpu']:.2f}) | {'yes' if r['same_ngrams'] else 'NO'} | {r['max_dp']:.1e} "
            f"| {r['max_db']:.1e} | {r['ppl_ours']:.3f} | {r['ppl_kenlm']:.3f} |")
    lines += [
        "",
        "The command, as a user runs it: `dlsuite language ngram train.txt order=N output=model.arpa` against "
        "`lmplz -o N -S 20% < train.txt > model.arpa`, each a subprocess on the same text file. The command's "
        f"time includes starting Python and importing the CLI, measured apart as `python -c \"{COMMAND_IMPORTS}\"`; "
        "its build is the `build_seconds` it reports (read, count, smooth, write).",
        "",
        "| order | dlsuite language ngram | of which: import the CLI | of which: build_seconds | lmplz "
        "| lmplz / command | command's file = write_arpa's |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['order']} | {r['command']:.2f} s ({r['command_cpu']:.2f}) | {r['import']:.2f} s ({r['import_cpu']:.2f}) "
            f"| {r['command_build']:.2f} s | {r['lmplz']:.2f} s ({r['lmplz_cpu']:.2f}) | {r['lmplz'] / r['command']:.2f}x "
            f"| {'yes' if r['command_file_same'] else 'NO'} |")
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    main()

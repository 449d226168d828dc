"""What a person would rather look at: the embedding map, perplexity by sentence length, samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlsuite.pipelines.text import BOS_ID, EOS_ID, PAD_ID, SPECIALS, normalize
from dlsuite.shared import plots
from dlsuite.shared.runs import atomic_write_text


def embedding_map(model, vocab, run_dir: Path, words: int = 400) -> Path:
    """2-D t-SNE of the embeddings of the most frequent words (like the chapter's figure 12.3), as a
    PNG and in TensorBoard's projector (all embeddings, with the words as metadata)."""
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    table = np.asarray(model.embedding.embeddings)
    ids = np.argsort(-vocab.counts)[:words]
    ids = ids[ids >= len(SPECIALS)]  # words only
    points = TSNE(2, perplexity=min(30, len(ids) - 1), init="pca", random_state=0).fit_transform(table[ids])
    fig, ax = plt.subplots(figsize=(12, 12))
    ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.4)
    for (x, y), i in zip(points, ids, strict=False):
        ax.annotate(vocab.tokens[i], (x, y), fontsize=6)
    ax.set_title(f"Word embeddings, t-SNE of the {len(ids)} most frequent words")
    ax.set_axis_off()
    path = plots.save_figure(fig, run_dir, "embedding_map")
    write_projector(table, vocab.tokens, run_dir / "tb" / "projector")
    return path


def write_projector(table: np.ndarray, tokens, log_dir: Path) -> None:
    """TensorBoard projector files: a checkpoint holding the embedding and a metadata.tsv."""
    import tensorflow as tf
    from tensorboard.plugins import projector

    log_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(log_dir / "metadata.tsv", "".join(f"{t}\n" for t in tokens))
    variable = tf.Variable(table, name="embedding")
    tf.train.Checkpoint(embedding=variable).save(str(log_dir / "embedding.ckpt"))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
    embedding.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(str(log_dir), config)


def perplexity_by_length_figure(test_sentences, log_probs: dict[str, np.ndarray], run_dir: Path) -> Path:
    """Perplexity of each model per sentence-length bucket (one line per model)."""
    import matplotlib.pyplot as plt

    lengths = np.array([len(s) + 1 for s in test_sentences])
    token_length = np.repeat(lengths, lengths)
    edges = [1, 10, 20, 30, 40, 60, 1000]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, lp in log_probs.items():
        ppl = [np.exp(-lp[(token_length >= lo) & (token_length < hi)].mean())
               if np.any((token_length >= lo) & (token_length < hi)) else np.nan for lo, hi in zip(edges, edges[1:], strict=False)]
        ax.plot(range(len(ppl)), ppl, marker="o", label=name)
    ax.set_xticks(range(len(edges) - 1), [f"{lo}-{hi - 1}" if hi < 1000 else f"{lo}+" for lo, hi in zip(edges, edges[1:], strict=False)])
    ax.set_xlabel("sentence length (tokens incl. </s>)")
    ax.set_ylabel("test perplexity")
    ax.legend()
    return plots.save_figure(fig, run_dir, "perplexity_by_length")


def sample_text(model, vocab, prompt: str, config, seed: int = 0) -> str:
    """Samples a continuation of `prompt` with temperature and top-k from the exact distribution."""
    rng = np.random.default_rng(seed)
    ids = [BOS_ID] + list(vocab.encode([normalize(prompt)])[0]) if prompt.strip() else [BOS_ID]
    width = model.vocabulary_output.log_probs(model(np.array([ids[:1]], np.int32))[:, -1]).shape[-1]
    for _ in range(config.max_words):
        log_probs = np.asarray(model.next_log_probs(np.array([ids], np.int32)))[0].astype(np.float64)
        log_probs[[PAD_ID, BOS_ID]] = -np.inf  # never <pad> or <s>
        if width != len(vocab):  # shortlist: sample within the shortlist (its last column is the tail)
            log_probs = log_probs[:-1]
        if config.top_k:
            cutoff = np.sort(log_probs)[-min(config.top_k, len(log_probs))]
            log_probs[log_probs < cutoff] = -np.inf
        logits = log_probs / config.temperature
        p = np.exp(logits - logits.max())
        token = int(rng.choice(len(p), p=p / p.sum()))
        if token == EOS_ID:
            break
        ids.append(token)
    return vocab.decode(ids)


def save_samples(model, vocab, config, run_dir: Path, prompts=("", "and the lord said", "in the beginning")) -> Path:
    lines = [f"{p!r} -> {sample_text(model, vocab, p, config, seed=i)}" for i, p in enumerate(prompts)]
    return atomic_write_text(run_dir / "samples.txt", "\n".join(lines) + "\n")

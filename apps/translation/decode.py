"""Batched beam search in TensorFlow ops, used by `evaluate`, `predict` and the exported graph.

Greedy decoding is beam search with one beam. Hypotheses are ranked by their length-normalized
log-probability (Wu et al. 2016, GNMT):

    score(y) = log P(y | x) / lp(y),    lp(y) = ((5 + |y|) / 6) ** alpha     (alpha = length_penalty)

Without normalization (alpha = 0) beam search prefers short outputs, since every token adds a
negative log-probability. A finished hypothesis (one that emitted </s>) keeps its score and is
carried along at no cost, so it competes with the live ones until the search ends; the search
stops when every hypothesis is finished or a sentence reaches its length limit
(max_length_ratio x source tokens + 10, where </s> is forced).

Written by hand: Keras has no sequence beam search, and keras-hub's samplers decode
decoder-only models with a fixed prompt, not an encoder-decoder with per-beam attention state.
"""

from __future__ import annotations

import tensorflow as tf

from dlsuite.pipelines.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID

NEG_INF = -1e9


def length_normalizer(lengths, alpha: float):
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def _repeat_rows(x, times: int):
    """[B, ...] -> [B * times, ...]: each row repeated `times` times (the beams of one sentence)."""
    return tf.repeat(x, times, axis=0)


def _gather_beams(x, parents, batch: int, beams: int):
    """Reorders [B * K, ...] rows by `parents` [B, K] (each new beam's parent beam)."""
    shaped = tf.reshape(x, tf.concat([[batch, beams], tf.shape(x)[1:]], 0))
    picked = tf.gather(shaped, parents, axis=1, batch_dims=1)
    return tf.reshape(picked, tf.shape(x))


def _allowed(log_probs, finished, lengths, max_lengths):
    """Log-probs with the search's rules: never <pad>/<unk>/<s>; a finished beam may only add
    <pad> at no cost; a beam at its length limit may only end (</s>)."""
    vocab = tf.shape(log_probs)[-1]
    banned = tf.reduce_sum(tf.one_hot([PAD_ID, UNK_ID, BOS_ID], vocab), axis=0) > 0
    log_probs = tf.where(banned, NEG_INF, log_probs)
    at_limit = (lengths + 1 >= max_lengths)[..., None]
    only_eos = tf.where(tf.equal(tf.range(vocab), EOS_ID), 0.0, NEG_INF)
    log_probs = tf.where(at_limit, tf.maximum(log_probs, NEG_INF) + only_eos, log_probs)
    only_pad = tf.where(tf.equal(tf.range(vocab), PAD_ID), 0.0, NEG_INF)
    return tf.where(finished[..., None], only_pad, log_probs)


def beam_search(model, source, beam_width: int = 5, length_penalty: float = 0.6, max_length_ratio: float = 2.0):
    """source [B, S] ids (0-padded) -> dict of
    tokens [B, T] (ending with </s>, then <pad>), lengths [B] (with </s>), scores [B] (normalized
    log-probability), log_probs [B] (raw), attention [B, T, S] (the best beam's weights)."""
    source = tf.convert_to_tensor(source, tf.int32)
    batch, source_len = tf.shape(source)[0], tf.shape(source)[1]
    k = beam_width
    src_lengths = tf.reduce_sum(tf.cast(source != PAD_ID, tf.int32), axis=1)
    max_lengths = tf.cast(tf.cast(src_lengths, tf.float32) * max_length_ratio, tf.int32) + 10  # [B]
    max_steps = tf.maximum(tf.reduce_max(max_lengths), 1)  # an empty batch has no maximum

    memory = {name: _repeat_rows(value, k) for name, value in model.encode(source).items()}
    states = model.initial_states(memory)
    first_beam_only = tf.tile(tf.concat([[0.0], tf.fill([k - 1], NEG_INF)], 0)[None], [batch, 1])
    loop = dict(
        step=tf.constant(0), ids=tf.fill([batch * k], BOS_ID), states=states, log_probs=first_beam_only,
        lengths=tf.zeros([batch, k], tf.int32), finished=tf.zeros([batch, k], tf.bool),
        tokens=tf.zeros([batch, k, max_steps], tf.int32),
        attention=tf.zeros([batch, k, max_steps, source_len], tf.float32),
    )
    beam_limits = tf.repeat(max_lengths[:, None], k, axis=1)

    def keep_going(s):
        return tf.logical_and(s["step"] < max_steps, tf.logical_not(tf.reduce_all(s["finished"])))

    def step(s):
        log_probs, new_states, weights = model.decode_step(s["ids"], s["states"], memory)
        vocab = tf.shape(log_probs)[-1]
        log_probs = _allowed(tf.reshape(log_probs, [batch, k, vocab]), s["finished"], s["lengths"], beam_limits)
        total = s["log_probs"][..., None] + log_probs  # [B, K, V]
        new_lengths = s["lengths"] + tf.cast(tf.logical_not(s["finished"]), tf.int32)
        ranked = total / length_normalizer(new_lengths, length_penalty)[..., None]
        _, best = tf.math.top_k(tf.reshape(ranked, [batch, k * vocab]), k=k)  # [B, K]
        parents, tokens = best // vocab, best % vocab
        finished = tf.gather(s["finished"], parents, batch_dims=1)
        position = tf.one_hot(s["step"], max_steps, dtype=tf.int32)  # writes this step's column
        written = tf.gather(s["tokens"], parents, batch_dims=1) + tokens[..., None] * position
        beam_weights = tf.reshape(weights, [batch, k, source_len])
        step_weights = tf.where(finished[..., None], 0.0, tf.gather(beam_weights, parents, batch_dims=1))
        attention = (tf.gather(s["attention"], parents, batch_dims=1)
                     + step_weights[:, :, None, :] * tf.cast(position, tf.float32)[None, None, :, None])
        return dict(
            step=s["step"] + 1, ids=tf.reshape(tokens, [-1]),
            states=[_gather_beams(state, parents, batch, k) for state in new_states],
            log_probs=tf.gather(tf.reshape(total, [batch, k * vocab]), best, batch_dims=1),
            lengths=tf.gather(new_lengths, parents, batch_dims=1),
            finished=tf.logical_or(finished, tf.equal(tokens, EOS_ID)),
            tokens=written, attention=attention,
        )

    final = tf.while_loop(keep_going, lambda s: [step(s)], [loop], maximum_iterations=max_steps)[0]
    normalized = final["log_probs"] / length_normalizer(final["lengths"], length_penalty)
    best = tf.argmax(normalized, axis=1, output_type=tf.int32)
    pick = lambda x: tf.gather(x, best, axis=1, batch_dims=1)  # noqa: E731
    return {"tokens": pick(final["tokens"]), "lengths": pick(final["lengths"]), "scores": pick(normalized),
            "log_probs": pick(final["log_probs"]), "attention": pick(final["attention"])}

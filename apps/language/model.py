"""Neural language models: embeddings -> a recurrent or fixed-window body -> a vocabulary output.

Both bodies map tokens [B, T] to hidden states [B, T, H], one per position, from the words up to
that position only:
- `lstm`: stacked LSTMs (the chapter's recurrent LM);
- `mlp`: Bengio et al. (2003): the concatenated embeddings of the previous `window` words
  through tanh layers. Concatenate-then-dense at every position is a causal Conv1D with kernel
  `window`, which is how it is written here (one matmul per layer for all positions).

The output layer (shared/layers/vocabulary_outputs.py) is the model's `vocabulary_output`; the
model returns hidden states and `compute_loss` asks the output layer for its training objective
(full, hierarchical, sampled, NCE or ranking), while evaluation always uses the exact
normalized log-probability, so perplexities are comparable whatever the training loss.
"""

from __future__ import annotations

import keras
from keras import ops

from dlsuite.pipelines.text import PAD_ID
from dlsuite.shared.layers.vocabulary_outputs import make_vocabulary_output
from dlsuite.shared.replicas import scale_loss_for_replicas


@keras.saving.register_keras_serializable(package="dlsuite")
class LanguageModel(keras.Model):
    """tokens [B, T] -> hidden [B, T, H]; `vocabulary_output` turns them into (log-)probabilities.

    Every constructor argument is an attribute of the same name and a key of `get_config()`, but
    `counts`: the |V| unigram counts are no setting, and in the config every saved `config.json`
    would carry them. The output layers that need them (trees, sampling proposals) keep them and
    save them as an asset of the `.keras` file, so `keras.saving.load_model` restores them exactly.

    Args:
        vocab_size: int. |V|.
        counts: unigram count per id, or None (the "full" and "shortlist" outputs need none; a
            model made by `from_config` gets them from the `.keras` file's assets).
        body: "lstm" or "mlp" (a fixed window of `window` previous tokens).
        embedding_dim, hidden_dim, num_layers, window, dropout: the body's sizes.
        output_kind: one of OUTPUT_KINDS (shared/layers/vocabulary_outputs.py).
        output_options: the output layer's other arguments (shortlist_size, num_samples, ...).
    """

    def __init__(self, vocab_size, counts=None, body="lstm", embedding_dim=128, hidden_dim=256, num_layers=1,
                 window=4, dropout=0.2, output_kind="full", output_options=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.body, self.embedding_dim, self.hidden_dim = vocab_size, body, embedding_dim, hidden_dim
        self.num_layers, self.window, self.dropout, self.output_kind = num_layers, window, dropout, output_kind
        self.output_options = dict(output_options or {})
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.dropout_layer = keras.layers.Dropout(dropout)
        if body == "lstm":
            self.body_layers = [keras.layers.LSTM(hidden_dim, return_sequences=True, name=f"lstm_{i}")
                                for i in range(num_layers)]
        else:
            self.body_layers = [keras.layers.Conv1D(hidden_dim, window if i == 0 else 1, padding="causal",
                                                    activation="tanh", name=f"window_dense_{i}")
                                for i in range(num_layers)]
        # given hidden_dim, the factory builds the layer: its weights exist before the first call
        self.vocabulary_output = make_vocabulary_output(output_kind, vocab_size, counts, hidden_dim,
                                                        **self.output_options)

    @property
    def counts(self):
        """The output layer's unigram counts (None for outputs that use none)."""
        return getattr(self.vocabulary_output, "counts", None)

    def call(self, tokens, training=False):
        hidden = self.dropout_layer(self.embedding(tokens), training=training)
        for layer in self.body_layers:
            hidden = self.dropout_layer(layer(hidden), training=training)
        return hidden

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Training: the output layer's objective. Evaluation: exact -log P(target) per token, so
        exp(val_loss) is (about: batches are averaged) the validation perplexity."""
        weights = ops.cast(ops.not_equal(y, PAD_ID), "float32") if sample_weight is None else ops.cast(sample_weight, "float32")
        total = ops.maximum(ops.sum(weights), 1.0)
        if training:
            per_token = self.vocabulary_output.training_loss(y_pred, y)
        else:
            per_token = -self.vocabulary_output.log_prob(y_pred, y)
        loss = ops.sum(ops.cast(per_token, "float32") * weights) / total
        return scale_loss_for_replicas(loss + (ops.sum(self.losses) if self.losses else 0.0))

    def log_prob(self, tokens, targets):
        """Exact natural-log P(target_t | tokens_<=t), [B, T] (shortlist: tail targets need the n-gram)."""
        return self.vocabulary_output.log_prob(self(tokens), targets)

    def next_log_probs(self, tokens):
        """Exact log P(next | tokens) over the output's columns, for the last position: [B, V]."""
        return self.vocabulary_output.log_probs(self(tokens)[:, -1])

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, body=self.body, embedding_dim=self.embedding_dim,
                      hidden_dim=self.hidden_dim, num_layers=self.num_layers, window=self.window,
                      dropout=self.dropout, output_kind=self.output_kind, output_options=dict(self.output_options))
        return config


def build_language_model(config, vocab_size: int, counts) -> LanguageModel:
    options = {}
    if config.output == "shortlist":
        options["shortlist_size"] = min(config.shortlist_size, vocab_size - 1)
    if config.output == "hierarchical_classes" and config.num_classes:
        options["num_classes"] = min(config.num_classes, vocab_size)
    if config.output in ("sampled", "nce", "ranking"):
        options["num_samples"] = min(config.num_samples, vocab_size - 1)
        options["proposal_power"] = config.proposal_power
    if config.output == "ranking":
        options["margin"] = config.ranking_margin
        options["pairwise"] = config.ranking_loss
    model = LanguageModel(vocab_size, counts, body=config.model, embedding_dim=config.embedding_dim,
                          hidden_dim=config.hidden_dim, num_layers=config.num_layers, window=config.window,
                          dropout=config.dropout, output_kind=config.output, output_options=options)
    model(ops.zeros((1, 2), "int32"))  # build the weights now, so summaries and checkpoints work
    if config.output == "full" and counts is not None:
        # Zero bias = a uniform start: 3.3x slower to converge than the sampled layers, which start
        # at the unigram model (BENCHMARKS.md, "Output layers trained to their plateau").
        model.vocabulary_output.start_at_unigram(counts)
    return model

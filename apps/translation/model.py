"""The encoder-decoder translator, with Bahdanau attention or a fixed-size context (the baseline).

    source ids [B, S] -> embedding -> bidirectional GRU/LSTM          # the reader: h_1..h_S (the memory)
    attention=True  (Bahdanau et al. 2015):
        s_i = RNN(s_{i-1}, E y_{i-1})                                   # the decoder state
        e_ij = v^T tanh(W s_i + U h_j);  a_i = softmax_j(e_i)           # additive relevance scores
        c_i = sum_j a_ij h_j                                            # context: weighted average of the memory
    attention=False (Cho et al. 2014, Sutskever et al. 2014):
        c = [h_S(forward); h_1(backward)] for every i                   # one fixed-size vector for the sentence
        s_i = RNN(s_{i-1}, [E y_{i-1}; c])
    both: p(y_i | y_<i, x) = softmax(V_o W_o [s_i; c_i; E y_{i-1}])         # deep output layer
          s_0 = tanh(W_s [h_S(forward); h_1(backward)])

The scores use Keras' own `AdditiveAttention` (Bahdanau's score v^T tanh(q + k), here on the
projected query W s_i and keys U h_j). Two deviations from Bahdanau's paper:
- for speed, the context c_i is computed from the current state s_i and feeds the output layer
  (Luong et al. 2015's order), not the next recurrent step. The decoder RNN then runs over the
  whole target in one call while training (fused/cuDNN kernels on GPU), and one decoder step
  (`decode_step`, the RNN's cell) serves greedy and beam search in decode.py and the export;
- the deep output layer W_o is linear, not a maxout. A tanh there (Luong's choice) bounds the
  logits and slowed learning about tenfold here (one 12-pair batch: loss 2.6 vs 0.01 after 240
  Adam steps).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from dlsuite.pipelines.text import PAD_ID

RNN_LAYERS = {"gru": layers.GRU, "lstm": layers.LSTM}


@keras.saving.register_keras_serializable(package="dlsuite")
class Translator(keras.Model):
    """Inputs {"source": [B, S] ids, "target_in": [B, T] ids starting with <s>} -> logits [B, T, V].

    Every constructor argument is an attribute of the same name and a key of `get_config()`;
    `attention` (a bool) says whether the decoder attends (the scores are `additive_attention`).
    """

    def __init__(self, source_vocab_size, target_vocab_size, embedding_dim=128, encoder_units=128,
                 decoder_units=192, attention_units=128, rnn="gru", attention=True, dropout=0.2, **kwargs):
        super().__init__(**kwargs)
        self.source_vocab_size, self.target_vocab_size = source_vocab_size, target_vocab_size
        self.embedding_dim, self.encoder_units, self.decoder_units = embedding_dim, encoder_units, decoder_units
        self.attention_units, self.rnn, self.attention, self.dropout = attention_units, rnn, attention, dropout
        recurrent = RNN_LAYERS[rnn]
        self.source_embedding = layers.Embedding(source_vocab_size, embedding_dim, name="source_embedding")
        self.encoder = layers.Bidirectional(recurrent(encoder_units, return_sequences=True, return_state=True),
                                            name="encoder")
        self.bridge = layers.Dense(decoder_units, activation="tanh", name="bridge")  # s_0 from the final states
        self.target_embedding = layers.Embedding(target_vocab_size, embedding_dim, name="target_embedding")
        self.decoder = recurrent(decoder_units, return_sequences=True, return_state=True, name="decoder")
        if attention:
            self.keys = layers.Dense(attention_units, use_bias=False, name="attention_keys")  # U h_j
            self.query = layers.Dense(attention_units, use_bias=False, name="attention_query")  # W s_i
            self.additive_attention = layers.AdditiveAttention(use_scale=True, name="attention")  # v^T tanh(q + k)
        self.readout = layers.Dense(embedding_dim, name="readout")  # linear: see the module docstring
        self.logits = layers.Dense(target_vocab_size, dtype="float32", name="logits")
        self.drop = layers.Dropout(dropout)

    # --- the reader ---
    def encode(self, source, training=False) -> dict:
        """The memory the decoder reads: encoder states h_j, their keys U h_j, the source mask, the
        fixed-size summary c and the decoder's first state s_0."""
        mask = ops.not_equal(source, PAD_ID)
        x = self.drop(self.source_embedding(source), training=training)
        outputs, *states = self.encoder(x, mask=mask, training=training)
        half = len(states) // 2  # forward states, then backward ones (h, or h and c for an LSTM)
        summary = ops.concatenate([states[0], states[half]], axis=-1)
        memory = {"values": outputs, "mask": mask, "summary": summary}
        if self.attention:
            memory["keys"] = self.keys(outputs)
        return memory

    def initial_states(self, memory) -> list:
        s0 = self.bridge(memory["summary"])
        return [s0, ops.zeros_like(s0)] if self.rnn == "lstm" else [s0]

    # --- the writer ---
    def _decoder_inputs(self, embedded, memory):
        if self.attention:
            return embedded
        steps = ops.shape(embedded)[1]
        fixed = ops.repeat(ops.expand_dims(memory["summary"], 1), steps, axis=1)
        return ops.concatenate([embedded, ops.cast(fixed, embedded.dtype)], axis=-1)

    def _output(self, states_seq, embedded, memory, training=False):
        """Logits [B, T, V] and attention weights [B, T, S] (None without attention) for decoder states."""
        if self.attention:
            query = self.query(states_seq)
            context, weights = self.additive_attention([query, memory["values"], memory["keys"]],
                                              mask=[None, memory["mask"]], return_attention_scores=True)
        else:
            context, weights = ops.repeat(ops.expand_dims(memory["summary"], 1), ops.shape(states_seq)[1], axis=1), None
        features = ops.concatenate([states_seq, ops.cast(context, states_seq.dtype), embedded], axis=-1)
        hidden = self.drop(self.readout(features), training=training)
        return self.logits(hidden), weights

    def decode_sequence(self, target_in, memory, training=False):
        """Teacher forcing: the whole target at once. Returns (logits [B, T, V], weights [B, T, S])."""
        embedded = self.drop(self.target_embedding(target_in), training=training)
        states_seq, *_ = self.decoder(self._decoder_inputs(embedded, memory), mask=ops.not_equal(target_in, PAD_ID),
                                      initial_state=self.initial_states(memory), training=training)
        return self._output(states_seq, embedded, memory, training)

    def decode_step(self, previous_ids, states, memory):
        """One decoder step for search: ids [N] -> (log-probs [N, V] float32, new states, weights [N, S])."""
        embedded = self.target_embedding(previous_ids)[:, None, :]
        inputs = self._decoder_inputs(embedded, memory)[:, 0, :]
        output, new_states = self.decoder.cell(inputs, states)
        logits, weights = self._output(output[:, None, :], embedded, memory)
        weights = weights[:, 0, :] if weights is not None else ops.zeros(ops.shape(memory["mask"]), "float32")
        return ops.log_softmax(logits[:, 0, :], axis=-1), list(new_states), ops.cast(weights, "float32")

    def call(self, inputs, training=False):
        memory = self.encode(inputs["source"], training=training)
        return self.decode_sequence(inputs["target_in"], memory, training=training)[0]

    def get_config(self):
        config = super().get_config()
        config.update(source_vocab_size=self.source_vocab_size, target_vocab_size=self.target_vocab_size,
                      embedding_dim=self.embedding_dim, encoder_units=self.encoder_units,
                      decoder_units=self.decoder_units, attention_units=self.attention_units, rnn=self.rnn,
                      attention=self.attention, dropout=self.dropout)
        return config


def build_translator(config, vocab) -> Translator:
    """The model a config describes, built (weights created) on a tiny batch."""
    model = Translator(vocab.source_size, vocab.target_size, embedding_dim=config.embedding_dim,
                       encoder_units=config.encoder_units, decoder_units=config.decoder_units,
                       attention_units=config.attention_units, rnn=config.rnn, attention=config.attention,
                       dropout=config.dropout)
    model({"source": ops.ones((1, 3), "int32"), "target_in": ops.ones((1, 2), "int32")})
    return model

"""The acoustic model: normalized log-mel frames -> per-frame character log-probabilities (CTC).

DeepSpeech2-like (Amodei et al. 2016), small enough for a CPU:

    features [B, T, F] -> SpecAugment (training only)
      -> Conv2D over (time, frequency), stride (s, 2) -> Conv2D, stride (1, 2)   # the spectrogram as an image
      -> rnn_layers x bidirectional GRU/LSTM                                       # context both ways in time
      -> Dense(len(ALPHABET))  = logits over [blank, space, ', a..z] every s x 10 ms

The time stride s (2: 20 ms frames) sets the recurrent layers' cost; CTC needs at least one
frame per character (plus one between repeated letters), about 26 characters/s at espeak's
fastest rates here, so s = 2 leaves room and s = 3 is tight.

Training minimizes the CTC loss (Graves et al. 2006): -log of the summed probability of every
frame labelling that collapses to the transcript, through Keras' own `ops.ctc_loss`
(tf.nn.ctc_loss). Padded frames are masked in the recurrent layers, so a padded batch gives the
same outputs as one utterance at a time (what the exported model sees).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from dlsuite.shared.replicas import scale_loss_for_replicas


def output_lengths(frame_lengths, time_stride: int = 2):
    """Frames after the strided convolution ('same' padding): ceil(T / stride)."""
    return (frame_lengths + time_stride - 1) // time_stride


@keras.saving.register_keras_serializable(package="dlsuite")
class SpecAugment(layers.Layer):
    """Time and frequency masks (Park et al. 2019), set to 0 (the mean of normalized features).

    Written by hand: Keras has no SpecAugment layer. Each utterance gets `time_masks` masks of
    0..time_mask_frames frames and `freq_masks` of 0..freq_mask_bins bands, at random places.
    """

    def __init__(self, time_masks=2, time_mask_frames=20, freq_masks=2, freq_mask_bins=10, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.time_masks, self.time_mask_frames, self.seed = time_masks, time_mask_frames, seed
        self.freq_masks, self.freq_mask_bins = freq_masks, freq_mask_bins
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _keep(self, batch, size, count, widest):
        """[batch, size] booleans: False inside any of `count` random spans of width 0..widest."""
        if count == 0 or widest == 0:
            return ops.ones((batch, size), "bool")
        shape = (batch, count, 1)
        width = ops.floor(keras.random.uniform(shape, 0, widest + 1, seed=self.seed_generator))
        start = ops.floor(keras.random.uniform(shape, 0, 1, seed=self.seed_generator) * ops.maximum(ops.cast(size, "float32") - width, 1.0))
        position = ops.cast(ops.arange(size), "float32")[None, None, :]
        inside = ops.logical_and(position >= start, position < start + width)
        return ops.logical_not(ops.any(inside, axis=1))

    def call(self, features, training=False):
        if not training:
            return features
        batch, frames, bins = ops.shape(features)[0], ops.shape(features)[1], ops.shape(features)[2]
        keep_time = self._keep(batch, frames, self.time_masks, self.time_mask_frames)
        keep_freq = self._keep(batch, bins, self.freq_masks, self.freq_mask_bins)
        keep = ops.logical_and(keep_time[:, :, None], keep_freq[:, None, :])
        return ops.where(keep, features, ops.zeros_like(features))

    def get_config(self):
        config = super().get_config()
        config.update(time_masks=self.time_masks, time_mask_frames=self.time_mask_frames, freq_masks=self.freq_masks,
                      freq_mask_bins=self.freq_mask_bins, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="dlsuite")
class SpeechRecognizer(keras.Model):
    """{"features": [B, T, F], "lengths": [B]} -> logits [B, ceil(T/2), num_classes]; blank = class 0.

    Every constructor argument is an attribute of the same name and a key of `get_config()`
    (`spec_augment` is SpecAugment's arguments; the layer itself is `augment`).
    """

    def __init__(self, feature_dim, num_classes, conv_filters=32, rnn="gru", rnn_units=192, rnn_layers=3,
                 dropout=0.1, spec_augment=None, time_stride=2, **kwargs):
        super().__init__(**kwargs)
        self.feature_dim, self.num_classes, self.conv_filters, self.rnn = feature_dim, num_classes, conv_filters, rnn
        self.rnn_units, self.rnn_layers, self.dropout = rnn_units, rnn_layers, dropout
        self.spec_augment, self.time_stride = dict(spec_augment or {}), time_stride
        self.augment = SpecAugment(**self.spec_augment, name="spec_augment")
        # Kernels smaller than DeepSpeech2's (11x41, 11x21): those cost 5x more here on a CPU.
        self.convs = [
            layers.Conv2D(conv_filters, (7, 11), strides=(time_stride, 2), padding="same", use_bias=False, name="conv_1"),
            layers.Conv2D(conv_filters, (5, 7), strides=(1, 2), padding="same", use_bias=False, name="conv_2"),
        ]
        # synchronized: several replicas normalize with the global batch's statistics (as one device would)
        self.norms = [layers.BatchNormalization(synchronized=True, name=f"conv_norm_{i + 1}") for i in range(2)]
        cell = layers.GRU if rnn == "gru" else layers.LSTM
        self.rnns = [layers.Bidirectional(cell(rnn_units, return_sequences=True), name=f"bi{rnn}_{i + 1}")
                     for i in range(rnn_layers)]
        self.dropout_layer = layers.Dropout(dropout)
        self.classifier = layers.Dense(num_classes, name="characters")

    def call(self, inputs, training=False):
        x = self.augment(inputs["features"], training=training)
        # A multiple of the stride in frames: 'same' padding then starts the strided convolution at the
        # same offset for any padded batch length, so batched and single results agree.
        stride = self.time_stride
        x = ops.pad(x, [[0, 0], [0, (stride - ops.shape(x)[1] % stride) % stride], [0, 0]])[..., None]  # [B, T, F, 1]
        lengths = self.output_lengths(inputs["lengths"])
        mask = ops.arange(ops.shape(x)[1] // stride + 1, dtype="int32")[None, :] < lengths[:, None]
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = ops.relu(norm(conv(x), training=training))
            mask = mask[:, : ops.shape(x)[1]]
            # Zero the padded frames, as 'same' padding would for an utterance on its own.
            x = x * ops.cast(mask, x.dtype)[:, :, None, None]
        x = ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], x.shape[2] * x.shape[3]))
        for rnn in self.rnns:
            x = self.dropout_layer(rnn(x, mask=mask, training=training), training=training)
        return self.classifier(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean CTC loss per utterance (natural log)."""
        loss = ops.ctc_loss(y["labels"], ops.cast(y_pred, "float32"), y["label_lengths"],
                            self.output_lengths(x["lengths"]), mask_index=0)
        return scale_loss_for_replicas(ops.mean(loss) + (ops.sum(self.losses) if self.losses else 0.0))

    def log_probs(self, features, lengths):
        """Per-frame log-probabilities [B, T', C] and their valid lengths [B] (inference mode)."""
        logits = self({"features": features, "lengths": lengths}, training=False)
        return ops.log_softmax(ops.cast(logits, "float32"), axis=-1), self.output_lengths(lengths)

    def utterance_log_probs(self, features):
        """[T', C] NumPy log-probabilities of one utterance's features [T, F] (no padding)."""
        log_probs, _ = self.log_probs(features[None], ops.convert_to_tensor([features.shape[0]]))
        return ops.convert_to_numpy(log_probs)[0]

    def output_lengths(self, frame_lengths):
        return output_lengths(ops.cast(frame_lengths, "int32"), self.time_stride)

    def get_config(self):
        config = super().get_config()
        config.update(feature_dim=self.feature_dim, num_classes=self.num_classes, conv_filters=self.conv_filters,
                      rnn=self.rnn, rnn_units=self.rnn_units, rnn_layers=self.rnn_layers, dropout=self.dropout,
                      spec_augment=dict(self.spec_augment), time_stride=self.time_stride)
        return config


def build_speech_model(config, feature_dim: int, num_classes: int) -> SpeechRecognizer:
    augment = dict(time_masks=config.time_masks, time_mask_frames=config.time_mask_frames,
                   freq_masks=config.freq_masks, freq_mask_bins=config.freq_mask_bins, seed=config.seed)
    model = SpeechRecognizer(feature_dim, num_classes, conv_filters=config.conv_filters, rnn=config.rnn,
                             rnn_units=config.rnn_units, rnn_layers=config.rnn_layers, dropout=config.dropout,
                             spec_augment=augment, time_stride=config.time_stride)
    model({"features": ops.zeros((1, 8, feature_dim)), "lengths": ops.array([8])})  # build the weights now
    return model

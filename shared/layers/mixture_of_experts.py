"""A gated mixture of experts: a gater chooses which experts run for each input.

The source text's dynamic structure (a gater network picks the experts that run per input) in
the form of Shazeer et al. 2017, "Outrageously Large Neural Networks: The Sparsely-Gated
Mixture-of-Experts Layer": y = sum_i G(x)_i E_i(x) (their eq. 1), with a soft gate
G(x) = softmax(x W_g) (eq. 2) or a noisy top-k gate G(x) = softmax(KeepTopK(H(x), k))
(eqs. 3-5). A Switch-Transformer load-balancing loss (Fedus et al. 2021, eqs. 4-6) keeps the
gater from sending everything to a few experts.

Written with `keras.ops` only, so it runs on the TensorFlow and the JAX backends. Tests:
`.venv/bin/python -m pytest tests/shared/test_mixture_of_experts.py`.
"""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops


def _check_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}.")
    return int(value)


def _glorot_per_expert(fan_in, fan_out):
    """Glorot-uniform limits for one expert's (fan_in, fan_out) matrix.

    Keras's GlorotUniform would count the leading `num_experts` axis of a stacked
    (E, in, out) kernel as a receptive field and shrink every expert's weights by E.
    """
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return keras.initializers.RandomUniform(-limit, limit)


def _softmax(logits):
    """Softmax over the last axis; exactly 1 over an axis of one (k = 1, or one expert)."""
    if logits.shape[-1] == 1:
        return ops.ones_like(logits)  # what softmax gives, without Keras's size-1 warning
    return ops.softmax(logits, axis=-1)


@keras.saving.register_keras_serializable(package="dlsuite")
class MixtureOfExperts(keras.layers.Layer):
    """Mixture of `num_experts` Dense experts chosen per input by a softmax gater.

    y = sum_i g_i(x) E_i(x) (Shazeer et al. eq. 1), for each row of a (batch, features) input
    or each position of a (batch, time, features) input. Each expert E_i is a Dense block,
    `features -> hidden_units (activation) -> units`, or one Dense `features -> units` when
    `hidden_units` is None. The experts' weights are stacked, (num_experts, in, out), so all
    experts are computed by one einsum.

    Gating, always computed in float32 (also under a mixed-precision policy):
    - `top_k=None`, soft gating: g(x) = softmax(x W_g) (eq. 2); every expert contributes.
    - `top_k=k`: g(x) = softmax(KeepTopK(H(x), k)) (eqs. 3, 5): the softmax over the k largest
      logits only, exactly 0 for the other experts. While training, H(x) = x W_g +
      noise_stddev * N(0, 1) (eq. 4 with a fixed noise scale, where Shazeer et al. learn it
      with a second matrix W_noise); at inference H(x) = x W_g. With k=1 the renormalized gate
      is always exactly 1, so the gater is trained by the load-balancing loss alone (Switch
      Transformers weight the chosen expert by its full-softmax probability for that reason);
      use k >= 2 or soft gating when the routing itself must be learned from the task.

    Load balancing: in training the layer adds `load_balance_weight * L` with `self.add_loss`,
    L = num_experts * sum_i f_i P_i (Fedus et al. eq. 4). f_i is the fraction of rows
    (positions) sent to expert i, counted over the top-k choices and divided by k (eq. 5; soft
    gating counts each row's largest gate); P_i is the mean full-softmax gate probability of
    expert i (eq. 6). L = 1 for perfectly uniform routing, and L >= 1 whenever f = P (it is then
    E sum_i P_i^2, Cauchy-Schwarz), up to L = E when one expert takes everything. We chose this
    form over Shazeer's importance and load losses (eqs. 6-10): it is one term with one weight,
    it is defined for every k and for noise_stddev = 0 (Shazeer's smooth load estimator needs
    the noise's CDF), and its minimum does not depend on the batch. f is a count and carries no
    gradient; the gater learns through P.

    Computation: every expert runs on every input and the gates of unselected experts are
    exactly 0, so the output is exactly what sparse dispatch (a gather of each input to its k
    experts and a scatter back) would give. That dispatch pays off on accelerators with many
    experts; for a handful of small experts one dense einsum is simpler. The compute here
    is therefore that of the total parameters; `parameter_counts()` reports the parameters an
    input uses under sparse dispatch ("active") and the layer's total.

    Args:
        num_experts: int >= 1. The number of experts E.
        units: int >= 1. Output features of every expert and of the layer.
        hidden_units: int or None. Hidden width of each expert's two-layer block; None for
            single Dense experts. Defaults to None.
        top_k: int in [1, num_experts] or None. Experts kept per input; None for soft gating.
            Defaults to None.
        activation: str or callable. The experts' hidden activation (unused when hidden_units
            is None). Defaults to "relu".
        load_balance_weight: float >= 0. Weight of the load-balancing loss; 0 adds none.
            Defaults to 0.01 (Fedus et al.'s alpha).
        noise_stddev: float >= 0. Standard deviation of the Gaussian noise added to the gate
            logits in training. Defaults to 0.0.
        seed: int or None. Seed of the noise's `keras.random.SeedGenerator`. Defaults to None.
        **kwargs: `keras.layers.Layer` arguments (name, dtype, ...).

    Example:
    >>> inputs = keras.Input((16, 32))                                  # (B, T, 32)
    >>> moe = MixtureOfExperts(num_experts=8, units=32, hidden_units=64, top_k=2)
    >>> outputs = moe(inputs)                                           # (B, T, 32)
    >>> moe.parameter_counts()  # {'active': 8640, 'total': 33792, 'gate': 256, 'per_expert': 4192}
    """

    def __init__(
        self,
        num_experts,
        units,
        hidden_units=None,
        top_k=None,
        activation="relu",
        load_balance_weight=0.01,
        noise_stddev=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_experts = _check_positive_int("num_experts", num_experts)
        self.units = _check_positive_int("units", units)
        self.hidden_units = _check_positive_int("hidden_units", hidden_units, allow_none=True)
        self.top_k = _check_positive_int("top_k", top_k, allow_none=True)
        if self.top_k is not None and self.top_k > self.num_experts:
            raise ValueError(
                f"top_k must be <= num_experts={self.num_experts}, got {top_k}: "
                "there are only that many experts to choose from."
            )
        if not load_balance_weight >= 0:
            raise ValueError(f"load_balance_weight must be >= 0, got {load_balance_weight}.")
        if not noise_stddev >= 0:
            raise ValueError(f"noise_stddev must be >= 0, got {noise_stddev}.")
        self.activation = keras.activations.get(activation)
        self.load_balance_weight = float(load_balance_weight)
        self.noise_stddev = float(noise_stddev)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.noise_stddev > 0 else None

    # === Weights ===
    def build(self, input_shape):
        if len(input_shape) not in (2, 3) or input_shape[-1] is None:
            raise ValueError(
                "MixtureOfExperts expects inputs (batch, features) or (batch, time, features) "
                f"with known features; got shape {tuple(input_shape)}."
            )
        features, experts = input_shape[-1], self.num_experts
        # W_g of eq. 2, kept float32 under mixed precision (autocast=False): see _gate.
        self.gate_kernel = self.add_weight(
            name="gate_kernel",
            shape=(features, experts),
            dtype="float32",
            autocast=False,
            initializer=_glorot_per_expert(features, experts),
        )
        width = features
        if self.hidden_units is not None:
            self.hidden_kernel = self.add_weight(
                name="hidden_kernel",
                shape=(experts, features, self.hidden_units),
                initializer=_glorot_per_expert(features, self.hidden_units),
            )
            self.hidden_bias = self.add_weight(
                name="hidden_bias", shape=(experts, self.hidden_units), initializer="zeros"
            )
            width = self.hidden_units
        self.output_kernel = self.add_weight(
            name="output_kernel",
            shape=(experts, width, self.units),
            initializer=_glorot_per_expert(width, self.units),
        )
        self.output_bias = self.add_weight(
            name="output_bias", shape=(experts, self.units), initializer="zeros"
        )

    # === Gating ===
    def _gate(self, flat, training):
        """(N, D) rows -> gates (N, E), full-softmax probabilities (N, E), routed mask (N, E).

        Float32 throughout: the softmax's normalizer and the exact zeros of eq. 5 should not
        depend on a float16/bfloat16 compute dtype.
        """
        logits = ops.matmul(ops.cast(flat, "float32"), self.gate_kernel)  # (N, E): x W_g
        if training and self.noise_stddev > 0:
            # Eq. 4 with a fixed scale: H(x) = x W_g + noise_stddev * StandardNormal().
            logits += self.noise_stddev * keras.random.normal(
                ops.shape(logits), dtype="float32", seed=self.seed_generator
            )
        probabilities = _softmax(logits)  # (N, E): eq. 2, the P of the balance loss
        if self.top_k is None:
            top_one = ops.one_hot(ops.argmax(logits, axis=-1), self.num_experts, dtype="float32")
            return probabilities, probabilities, top_one
        top_logits, top_experts = ops.top_k(logits, self.top_k)  # (N, k) each
        chosen = ops.one_hot(top_experts, self.num_experts, dtype="float32")  # (N, k, E)
        # Eqs. 3 and 5: softmax over the k kept logits; the other experts' gates are exactly 0.
        top_gates = _softmax(top_logits)  # (N, k)
        gates = ops.einsum("nk,nke->ne", top_gates, chosen)  # (N, E)
        return gates, probabilities, ops.sum(chosen, axis=1)

    def _load_balance_loss(self, probabilities, routed):
        """num_experts * sum_i f_i P_i (Fedus et al. eqs. 4-6), from (N, E) tensors."""
        fraction_routed = ops.mean(routed, axis=0) / (self.top_k or 1)  # (E,): f_i, eq. 5
        mean_probability = ops.mean(probabilities, axis=0)  # (E,): P_i, eq. 6
        return self.num_experts * ops.sum(fraction_routed * mean_probability)

    def gates(self, inputs, training=False):
        """The gate values g(x): (..., num_experts) float32, zeros for unselected experts."""
        flat = ops.reshape(inputs, (-1, ops.shape(inputs)[-1]))
        gates, _, _ = self._gate(flat, training)
        return ops.reshape(gates, tuple(ops.shape(inputs)[:-1]) + (self.num_experts,))

    # === Forward pass ===
    def _experts(self, flat):
        """(N, D) -> every expert's output (N, E, units), one einsum per Dense."""
        if self.hidden_units is None:
            return ops.einsum("nd,edu->neu", flat, self.output_kernel) + self.output_bias
        hidden = ops.einsum("nd,edh->neh", flat, self.hidden_kernel) + self.hidden_bias
        hidden = self.activation(hidden)  # (N, E, H)
        return ops.einsum("neh,ehu->neu", hidden, self.output_kernel) + self.output_bias

    def call(self, inputs, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        leading_shape = tuple(ops.shape(x)[:-1])  # (B,) or (B, T): each position is routed
        flat = ops.reshape(x, (-1, ops.shape(x)[-1]))  # (N, D)
        gates, probabilities, routed = self._gate(flat, training)
        if training and self.load_balance_weight > 0:
            self.add_loss(self.load_balance_weight * self._load_balance_loss(probabilities, routed))
        # Eq. 1: y = sum_i g_i(x) E_i(x), dense over the experts (see the class docstring).
        outputs = ops.einsum("ne,neu->nu", ops.cast(gates, self.compute_dtype), self._experts(flat))
        return ops.reshape(outputs, leading_shape + (self.units,))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    # === Size ===
    def parameter_counts(self, input_features=None):
        """Parameters used per input ("active") and held in all ("total"), as a dict.

        `active` counts the gate and the top_k experts an input is dispatched to (all experts
        for soft gating): the basis of a "same active parameters" comparison with a dense
        layer; `total` counts the gate and all experts ("same total parameters"). Needs the
        layer built, or `input_features`.
        """
        if input_features is None:
            if not self.built:
                raise ValueError("parameter_counts needs the layer built or input_features.")
            input_features = self.gate_kernel.shape[0]
        gate = input_features * self.num_experts
        if self.hidden_units is None:
            per_expert = (input_features + 1) * self.units
        else:
            per_expert = (input_features + 1) * self.hidden_units
            per_expert += (self.hidden_units + 1) * self.units
        used = self.top_k or self.num_experts
        return {
            "active": gate + used * per_expert,
            "total": gate + self.num_experts * per_expert,
            "gate": gate,
            "per_expert": per_expert,
        }

    # === Config ===
    def get_config(self):
        config = super().get_config()
        config.update(
            num_experts=self.num_experts,
            units=self.units,
            hidden_units=self.hidden_units,
            top_k=self.top_k,
            activation=keras.activations.serialize(self.activation),
            load_balance_weight=self.load_balance_weight,
            noise_stddev=self.noise_stddev,
            seed=self.seed,
        )
        return config

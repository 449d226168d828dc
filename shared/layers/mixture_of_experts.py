"""A gated mixture of experts: a gater chooses which experts run for each input.

The source text's dynamic structure (a gater network picks the experts that run per input) in
the form of Shazeer et al. 2017, "Outrageously Large Neural Networks: The Sparsely-Gated
Mixture-of-Experts Layer": y = sum_i G(x)_i E_i(x) (their eq. 1), with a soft gate
G(x) = softmax(x W_g) (eq. 2) or a noisy top-k gate G(x) = softmax(KeepTopK(H(x), k))
(eqs. 3-5). A Switch-Transformer load-balancing loss (Fedus et al. 2021, eqs. 4-6) keeps the
gater from sending everything to a few experts. With `dispatch="capacity"` each expert runs on
a fixed number of slots only (GShard, Lepikhin et al. 2020, sec. 2.2 and Algorithm 1; Switch
Transformer, Fedus et al. 2021, sec. 2.2, "expert capacity"), so top-k of E costs about k / E of
the experts' compute instead of all of it.

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

    Computation, `dispatch`:
    - "dense" (the default): every expert runs on every input, and the gates of unselected
      experts are exactly 0. The output is exactly that of a sparse dispatch, but the compute
      is that of the total parameters: top-2 of 8 costs as much as 8 experts.
    - "capacity" (top-k gating only): expert i gets C = min(N, ceil(capacity_factor * k * N / E))
      slots for the N rows of a call (Switch Transformer eq. 3). Rows take slots in priority
      order, every row's first choice before any row's second (GShard Algorithm 1), rows in
      batch order within one choice. A (row, expert) choice past the expert's C-th slot is
      dropped: that gate contributes 0, and the other kept gates are not renormalized; a row
      all of whose choices are dropped gets output 0 (no residual here). The experts run on
      (E, C, features) only, about capacity_factor * k / E of the dense compute. With C = N
      (capacity_factor >= E / k) nothing is dropped and the output equals "dense". Because
      slots are shared, one row's output can depend on the other rows of its batch; a batch of
      one row never drops. `dispatch_mask` gives the one-hot (N, E, C) dispatch tensor of
      GShard; the forward pass uses the same slots as indices (a gather into the slots and one
      back), since the one-hot einsum costs O(N E C features) = O(N^2): at N=1024, features
      512, E=8, k=2 on 2 CPU cores, 81 ms against 25 ms for "dense" and 14 ms for the gathers.
    `parameter_counts()` reports the parameters an input uses under sparse dispatch
    ("active") and the layer's total.

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
        dispatch: "dense" or "capacity". How the experts run (see Computation above); "capacity"
            needs `top_k`. Defaults to "dense".
        capacity_factor: float > 0. dispatch="capacity": slots per expert are
            ceil(capacity_factor * top_k * rows / num_experts), at most rows. Defaults to 1.25.
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
        dispatch="dense",
        capacity_factor=1.25,
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
        if dispatch not in ("dense", "capacity"):
            raise ValueError(f'dispatch must be "dense" or "capacity", got {dispatch!r}.')
        if dispatch == "capacity" and self.top_k is None:
            raise ValueError('dispatch="capacity" needs top_k: soft gating runs every expert.')
        if not capacity_factor > 0:
            raise ValueError(f"capacity_factor must be > 0, got {capacity_factor}.")
        self.activation = keras.activations.get(activation)
        self.load_balance_weight = float(load_balance_weight)
        self.noise_stddev = float(noise_stddev)
        self.seed = seed
        self.dispatch = dispatch
        self.capacity_factor = float(capacity_factor)
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
        """(N, D) rows -> gates (N, E), full-softmax probabilities (N, E), routed mask (N, E),
        and the top-k choices (gates (N, k), experts (N, k), best first; None for soft gating).

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
            return probabilities, probabilities, top_one, None
        top_logits, top_experts = ops.top_k(logits, self.top_k)  # (N, k) each
        chosen = ops.one_hot(top_experts, self.num_experts, dtype="float32")  # (N, k, E)
        # Eqs. 3 and 5: softmax over the k kept logits; the other experts' gates are exactly 0.
        top_gates = _softmax(top_logits)  # (N, k)
        gates = ops.einsum("nk,nke->ne", top_gates, chosen)  # (N, E)
        return gates, probabilities, ops.sum(chosen, axis=1), (top_gates, top_experts)

    def _load_balance_loss(self, probabilities, routed):
        """num_experts * sum_i f_i P_i (Fedus et al. eqs. 4-6), from (N, E) tensors."""
        fraction_routed = ops.mean(routed, axis=0) / (self.top_k or 1)  # (E,): f_i, eq. 5
        mean_probability = ops.mean(probabilities, axis=0)  # (E,): P_i, eq. 6
        return self.num_experts * ops.sum(fraction_routed * mean_probability)

    def gates(self, inputs, training=False):
        """The gate values g(x): (..., num_experts) float32, zeros for unselected experts."""
        flat = ops.reshape(inputs, (-1, ops.shape(inputs)[-1]))
        gates = self._gate(flat, training)[0]
        return ops.reshape(gates, tuple(ops.shape(inputs)[:-1]) + (self.num_experts,))

    # === Capacity dispatch ===
    def capacity(self, num_rows):
        """Slots per expert for a call on `num_rows` rows: min(N, ceil(capacity_factor k N / E)).

        Switch Transformer eq. 3, times k choices per row. A Python int when N is known while
        tracing (JAX, XLA: static shapes), an int32 tensor otherwise (TensorFlow, unknown batch).
        """
        wanted = self.capacity_factor * (self.top_k or self.num_experts) / self.num_experts
        if isinstance(num_rows, int):
            return min(num_rows, math.ceil(wanted * num_rows))
        slots = ops.cast(ops.ceil(wanted * ops.cast(num_rows, "float64")), "int32")  # as Python
        return ops.minimum(slots, ops.cast(num_rows, "int32"))

    def _slots(self, top_experts, capacity):
        """Top-k choices (N, k) -> each choice's place in its expert's queue (N, k), kept (N, k).

        Priority as in GShard's Algorithm 1: every row's first choice before any row's second,
        rows in batch order within one choice; places >= capacity are dropped.
        """
        chosen = ops.one_hot(top_experts, self.num_experts, dtype="int32")  # (N, k, E)
        by_priority = ops.reshape(ops.transpose(chosen, (1, 0, 2)), (-1, self.num_experts))
        ahead = ops.cumsum(by_priority, axis=0) - 1  # (k N, E): choices queued before, per expert
        place = ops.sum(ahead * by_priority, axis=-1)  # (k N,): choice-major order
        place = ops.transpose(ops.reshape(place, (self.top_k, -1)))  # (N, k)
        return place, place < capacity

    def dispatch_mask(self, inputs, training=False):
        """GShard's one-hot dispatch tensor for dispatch="capacity": (N, E, C) float32 over the
        N rows of `inputs`, 1 where row n sits in slot c of expert e; dropped choices have none."""
        if self.top_k is None:
            raise ValueError("dispatch_mask needs top_k: soft gating dispatches every row.")
        flat = ops.reshape(inputs, (-1, ops.shape(inputs)[-1]))
        top_experts = self._gate(flat, training)[3][1]
        capacity = self.capacity(ops.shape(flat)[0])
        place, kept = self._slots(top_experts, capacity)
        kept = ops.cast(kept, "float32")[..., None]  # (N, k, 1)
        experts = ops.one_hot(top_experts, self.num_experts) * kept  # (N, k, E)
        return ops.einsum("nke,nkc->nec", experts, ops.one_hot(place, capacity))  # (N, E, C)

    def _dispatched_outputs(self, flat, top_gates, top_experts):
        """Eq. 1 over each row's kept choices, the experts run on their (E, C, D) slots only.

        The slots as indices: a gather of rows into slots, and of slot outputs back to rows,
        where GShard multiplies by the one-hot dispatch tensor (see the class docstring).
        """
        rows, features = ops.shape(flat)[0], flat.shape[-1]
        capacity = self.capacity(rows)
        place, kept = self._slots(top_experts, capacity)
        num_slots = self.num_experts * capacity
        slot = ops.cast(top_experts, "int32") * capacity + place  # (N, k): expert-major
        slot = ops.where(kept, slot, num_slots)  # dropped choices: one spare slot, cut off below
        row = ops.arange(ops.size(slot), dtype="int32") // self.top_k  # (N k,): each choice's row
        # Slot -> row. Empty slots hold row 0, and no row reads their outputs back.
        row_of_slot = ops.scatter(ops.reshape(slot, (-1, 1)), row, (num_slots + 1,))[:num_slots]
        slotted = ops.take(flat, row_of_slot, axis=0)  # (E C, D)
        slotted = ops.reshape(slotted, (self.num_experts, capacity, features))
        slot_outputs = ops.reshape(self._slot_experts(slotted), (num_slots, self.units))
        chosen = ops.take(slot_outputs, ops.minimum(slot, num_slots - 1), axis=0)  # (N, k, U)
        kept_gates = ops.cast(ops.where(kept, top_gates, 0.0), self.compute_dtype)  # dropped: 0
        return ops.einsum("nk,nku->nu", kept_gates, chosen)

    # === Forward pass ===
    def _experts(self, flat):
        """(N, D) -> every expert's output (N, E, units), one einsum per Dense."""
        if self.hidden_units is None:
            return ops.einsum("nd,edu->neu", flat, self.output_kernel) + self.output_bias
        hidden = ops.einsum("nd,edh->neh", flat, self.hidden_kernel) + self.hidden_bias
        hidden = self.activation(hidden)  # (N, E, H)
        return ops.einsum("neh,ehu->neu", hidden, self.output_kernel) + self.output_bias

    def _slot_experts(self, slotted):
        """(E, C, D) -> (E, C, units): expert e on its own C slots only."""
        output_bias = self.output_bias[:, None]  # (E, 1, units): one bias per expert
        if self.hidden_units is None:
            return ops.einsum("ecd,edu->ecu", slotted, self.output_kernel) + output_bias
        hidden = ops.einsum("ecd,edh->ech", slotted, self.hidden_kernel) + self.hidden_bias[:, None]
        hidden = self.activation(hidden)  # (E, C, H)
        return ops.einsum("ech,ehu->ecu", hidden, self.output_kernel) + output_bias

    def call(self, inputs, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        leading_shape = tuple(ops.shape(x)[:-1])  # (B,) or (B, T): each position is routed
        flat = ops.reshape(x, (-1, ops.shape(x)[-1]))  # (N, D)
        gates, probabilities, routed, top = self._gate(flat, training)
        if training and self.load_balance_weight > 0:
            self.add_loss(self.load_balance_weight * self._load_balance_loss(probabilities, routed))
        if self.dispatch == "capacity":
            outputs = self._dispatched_outputs(flat, *top)
        else:  # Eq. 1: y = sum_i g_i(x) E_i(x), dense over the experts (see the class docstring).
            gates = ops.cast(gates, self.compute_dtype)
            outputs = ops.einsum("ne,neu->nu", gates, self._experts(flat))
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
            dispatch=self.dispatch,
            capacity_factor=self.capacity_factor,
        )
        return config

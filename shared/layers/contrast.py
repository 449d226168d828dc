"""Global and local contrast normalization (the applications chapter, section 12.2.1.1).

Both are Keras layers written with `keras.ops`, so the same object works inside a
model (differentiable, as input preprocessing or as a hidden-layer non-linearity)
and inside a `tf.data` map on the TensorFlow backend. Inputs are channels-last
images, `(H, W, C)` or batched `(B, H, W, C)`.
"""

from __future__ import annotations

import math

import keras
from keras import ops


def _as_batch(images):
    """Adds a batch axis to a single image; returns the images and a flag to undo it."""
    if len(images.shape) == 3:
        return ops.expand_dims(images, 0), True
    if len(images.shape) != 4:
        raise ValueError(
            f"Contrast normalization expects images of rank 3 (H, W, C) or 4 (B, H, W, C); "
            f"got shape {tuple(images.shape)}."
        )
    return images, False


def _floored_sqrt(value, epsilon):
    """max(epsilon, sqrt(value)), written as sqrt(max(value, epsilon^2)).

    The two are equal for epsilon >= 0, but this form has a finite gradient when
    value == 0 (a constant image), where d sqrt / d value would be infinite.
    """
    return ops.sqrt(ops.maximum(value, epsilon * epsilon))


@keras.saving.register_keras_serializable(package="dlsuite")
class GlobalContrastNormalization(keras.layers.Layer):
    """Global contrast normalization, equation 12.3.

    `X' = s * (X - mean(X)) / max(epsilon, sqrt(lambda + mean((X - mean(X))^2)))`,
    the mean taken over all pixels and channels of each image. `lambda > 0`
    regularizes the standard deviation of low-contrast images; `epsilon > 0`
    keeps a constant image from being divided by zero.

    Args:
        scale: float. `s`, the target standard deviation. Defaults to 1.0.
        regularization: float. `lambda`. Defaults to 0.0 (large images); the chapter
            uses 10 for small patches with pixels in [0, 255].
        epsilon: float. `epsilon`, the denominator's floor. Defaults to 1e-8.

    Example:
    >>> layer = GlobalContrastNormalization(scale=1.0, epsilon=1e-8)
    >>> normalized = layer(images)  # (B, H, W, C), each image with mean 0, std 1
    """

    def __init__(self, scale=1.0, regularization=0.0, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        if regularization < 0 or epsilon < 0:
            raise ValueError("regularization and epsilon must be >= 0.")
        if regularization == 0 and epsilon == 0:
            raise ValueError(
                "With regularization=0 and epsilon=0 a constant image divides by zero; "
                "set one of them above 0."
            )
        self.scale = scale
        self.regularization = regularization
        self.epsilon = epsilon

    def call(self, images):
        images, squeeze = _as_batch(images)
        x = ops.cast(images, self.compute_dtype)
        centred = x - ops.mean(x, axis=(1, 2, 3), keepdims=True)  # (B, H, W, C)
        variance = ops.mean(ops.square(centred), axis=(1, 2, 3), keepdims=True)  # (B, 1, 1, 1)
        out = self.scale * centred / _floored_sqrt(self.regularization + variance, self.epsilon)
        return ops.squeeze(out, 0) if squeeze else out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            scale=self.scale, regularization=self.regularization, epsilon=self.epsilon
        )
        return config


def window_weights(size: int, window: str, sigma: float | None = None):
    """1-D window weights summing to 1: a box, or a Gaussian (sigma defaults to size / 4)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be an odd positive integer, got {size}.")
    if window == "box":
        return [1.0 / size] * size
    if window != "gaussian":
        raise ValueError(f"window must be 'box' or 'gaussian', got '{window}'.")
    sigma = sigma or size / 4.0
    half = size // 2
    raw = [math.exp(-0.5 * ((i - half) / sigma) ** 2) for i in range(size)]
    total = sum(raw)
    return [w / total for w in raw]


@keras.saving.register_keras_serializable(package="dlsuite")
class LocalContrastNormalization(keras.layers.Layer):
    """Local contrast normalization with a box or Gaussian window.

    For each pixel: subtract the window-weighted local mean and divide by the
    window-weighted local standard deviation (Pinto et al. 2008 use a box window,
    Sermanet et al. 2012 a Gaussian and all channels at once):

        v = x - mu_w(x);   y = s * v / max(epsilon, sqrt(lambda + mu_w(v^2)))

    `mu_w` is computed with two separable 1-D depthwise convolutions (rows, then
    columns), O(k) instead of O(k^2) per pixel. At the borders the weights are
    renormalized over the pixels inside the image, so edges are not darkened by
    zero padding. With `across_channels=True` the local statistics are averaged
    over the channels too, so colour pixels are normalized together.

    Args:
        window_size: int. Odd window width in pixels. Defaults to 9.
        window: str. "gaussian" or "box". Defaults to "gaussian".
        sigma: float or None. Gaussian width; defaults to window_size / 4.
        across_channels: bool. Share statistics across channels. Defaults to False.
        scale: float. `s`. Defaults to 1.0.
        regularization: float. `lambda`, added to the local variance. Defaults to 0.0.
        epsilon: float. Floor of the denominator. Defaults to 1e-2, larger than GCN's
            because small windows often see near-constant regions.
    """

    def __init__(
        self, window_size=9, window="gaussian", sigma=None, across_channels=False,
        scale=1.0, regularization=0.0, epsilon=1e-2, **kwargs,
    ):
        super().__init__(**kwargs)
        if regularization == 0 and epsilon <= 0:
            raise ValueError("With regularization=0 and epsilon=0 a constant region divides by zero; set one of them above 0.")
        self.window_size = window_size
        self.window = window
        self.sigma = sigma
        self.across_channels = across_channels
        self.scale = scale
        self.regularization = regularization
        self.epsilon = epsilon
        self._weights_1d = window_weights(window_size, window, sigma)

    def _local_mean(self, x, normalizer):
        """Window-weighted mean over a (B, H, W, C) tensor, border-corrected."""
        k = self.window_size
        channels = x.shape[-1]
        w = ops.convert_to_tensor(self._weights_1d, dtype=x.dtype)
        rows = ops.tile(ops.reshape(w, (k, 1, 1, 1)), (1, 1, channels, 1))  # (k, 1, C, 1)
        cols = ops.tile(ops.reshape(w, (1, k, 1, 1)), (1, 1, channels, 1))  # (1, k, C, 1)
        smoothed = ops.depthwise_conv(x, rows, padding="same")
        smoothed = ops.depthwise_conv(smoothed, cols, padding="same")  # (B, H, W, C)
        if self.across_channels:
            smoothed = ops.mean(smoothed, axis=-1, keepdims=True)
        return smoothed / normalizer

    def _border_normalizer(self, x):
        """Sum of window weights that fall inside the image, per pixel: (1, H, W, 1)."""
        ones = ops.ones_like(x[:1, :, :, :1])
        k = self.window_size
        w = ops.convert_to_tensor(self._weights_1d, dtype=x.dtype)
        covered = ops.depthwise_conv(ones, ops.reshape(w, (k, 1, 1, 1)), padding="same")
        return ops.depthwise_conv(covered, ops.reshape(w, (1, k, 1, 1)), padding="same")

    def call(self, images):
        images, squeeze = _as_batch(images)
        x = ops.cast(images, self.compute_dtype)
        normalizer = self._border_normalizer(x)
        centred = x - self._local_mean(x, normalizer)  # v = x - mu_w(x)
        local_var = self._local_mean(ops.square(centred), normalizer)
        denominator = _floored_sqrt(self.regularization + local_var, self.epsilon)
        out = self.scale * centred / denominator
        return ops.squeeze(out, 0) if squeeze else out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            window_size=self.window_size, window=self.window, sigma=self.sigma,
            across_channels=self.across_channels, scale=self.scale,
            regularization=self.regularization, epsilon=self.epsilon,
        )
        return config

"""GlobalContrastNormalization and LocalContrastNormalization against NumPy loops."""

import numpy as np
import pytest
import tensorflow as tf

from dlsuite.shared.layers import GlobalContrastNormalization, LocalContrastNormalization
from dlsuite.shared.layers.contrast import window_weights


def numpy_gcn(x, s=1.0, lam=0.0, eps=1e-8):
    """Equation 12.3 over one image (H, W, C)."""
    centred = x - x.mean()
    return s * centred / max(eps, np.sqrt(lam + np.mean(centred**2)))


def numpy_lcn(x, size, window, across, s=1.0, lam=0.0, eps=1e-2):
    """Pixel by pixel: weighted mean/std over the window inside the image."""
    w1 = np.array(window_weights(size, window))
    w2 = np.outer(w1, w1)
    h, w, c = x.shape
    half = size // 2

    def local_mean(img):
        out = np.zeros_like(img)
        for i in range(h):
            for j in range(w):
                i0, i1, j0, j1 = max(0, i - half), min(h, i + half + 1), max(0, j - half), min(w, j + half + 1)
                k = w2[i0 - i + half : i1 - i + half, j0 - j + half : j1 - j + half]
                patch = img[i0:i1, j0:j1]  # (h', w', C)
                mean = (patch * k[..., None]).sum((0, 1)) / k.sum()
                out[i, j] = mean.mean() if across else mean
        return out

    v = x - local_mean(x)
    return s * v / np.maximum(eps, np.sqrt(lam + local_mean(v**2)))


@pytest.mark.parametrize("lam,eps", [(0.0, 1e-8), (10.0, 0.0), (0.5, 1e-3)])
def test_gcn_matches_equation_12_3(lam, eps):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (3, 7, 5, 3)).astype(np.float32)
    out = GlobalContrastNormalization(scale=2.0, regularization=lam, epsilon=eps)(images).numpy()
    for image, got in zip(images, out, strict=True):
        np.testing.assert_allclose(got, numpy_gcn(image.astype(np.float64), 2.0, lam, eps), rtol=1e-4, atol=1e-4)


def test_gcn_output_has_the_requested_std():
    images = np.random.default_rng(1).normal(5, 3, (4, 10, 10, 1)).astype(np.float32)
    out = GlobalContrastNormalization(scale=1.5)(images).numpy()
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1.5, rtol=1e-4)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-5)


@pytest.mark.parametrize("window", ["box", "gaussian"])
@pytest.mark.parametrize("across", [False, True])
def test_lcn_matches_direct_numpy(window, across):
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 1, (2, 9, 11, 3)).astype(np.float32)
    layer = LocalContrastNormalization(5, window, across_channels=across, regularization=0.01, epsilon=0.05)
    out = layer(images).numpy()
    for image, got in zip(images, out, strict=True):
        want = numpy_lcn(image.astype(np.float64), 5, window, across, lam=0.01, eps=0.05)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "layer",
    [GlobalContrastNormalization(), GlobalContrastNormalization(regularization=10.0, epsilon=0.0),
     LocalContrastNormalization(3), LocalContrastNormalization(5, "box", across_channels=True)],
    ids=["gcn", "gcn-lambda", "lcn", "lcn-box-across"],
)
def test_constant_images_give_zeros_and_finite_gradients(layer):
    """A constant image has zero contrast: output 0, no NaN, finite gradient."""
    images = tf.constant(np.full((2, 8, 8, 3), 0.7, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(images)
        out = layer(images)
        loss = tf.reduce_sum(out * tf.random.normal(out.shape, seed=0))
    grad = tape.gradient(loss, images)
    np.testing.assert_allclose(out.numpy(), 0, atol=1e-4)  # float rounding / epsilon
    assert np.all(np.isfinite(grad.numpy()))


def test_layers_work_in_tf_data_and_in_a_model():
    """The same layer object preprocesses in tf.data and runs inside a model."""
    images = np.random.default_rng(3).uniform(0, 1, (6, 12, 12, 1)).astype(np.float32)
    layer = LocalContrastNormalization(5)
    mapped = np.stack(list(tf.data.Dataset.from_tensor_slices(images).map(layer).as_numpy_iterator()))
    import keras

    model = keras.Sequential([keras.Input((12, 12, 1)), layer])
    np.testing.assert_allclose(mapped, model.predict(images, verbose=0), atol=1e-5)


def test_serialization_round_trip(tmp_path):
    import keras

    layer = LocalContrastNormalization(7, "box", across_channels=True, regularization=0.1, epsilon=0.0)
    clone = LocalContrastNormalization.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model = keras.Sequential([keras.Input((9, 9, 3)), GlobalContrastNormalization(regularization=1.0), layer])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(4).uniform(0, 1, (2, 9, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_bad_arguments_and_ranks_are_rejected():
    with pytest.raises(ValueError, match="rank 3 .* or 4"):
        GlobalContrastNormalization()(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        LocalContrastNormalization(3)(np.zeros((1, 2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="odd"):
        LocalContrastNormalization(4)
    with pytest.raises(ValueError, match="divides by zero"):
        GlobalContrastNormalization(regularization=0.0, epsilon=0.0)
    with pytest.raises(ValueError, match="box' or 'gaussian"):
        LocalContrastNormalization(3, "triangle")

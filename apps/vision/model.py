"""Vision model: augmentation -> contrast normalization -> backbone -> head.

    images (B, S, S, C) in [0, 1]
      -> "augment"   Keras preprocessing layers, active only in training
      -> "normalize" GlobalContrastNormalization | LocalContrastNormalization | identity
      -> "backbone"  a small residual CNN (ours) or a Keras Applications model
      -> "head"      Dense softmax over the classes, float32 under mixed precision

Each part is a named layer, so fine-tuning swaps "head" and export calls the
whole model: nothing is found by position.
"""

from __future__ import annotations

import keras
from keras import layers

from dlsuite.shared.layers import (
    GlobalContrastNormalization,
    LocalContrastNormalization,
    MixtureOfExperts,
)

# Keras' default 0.99 needs thousands of steps before the moving statistics used
# at inference catch up with the weights; small datasets train in a few hundred.
BN_MOMENTUM = 0.9


# === Layers ===
def batch_norm(name):
    # synchronized: with several replicas (strategy=mirrored|multi_worker) the batch statistics are those of
    # the global batch, so N replicas train as one device on the global batch does (tested).
    return layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=True, name=name)


def build_augmentation(
    translate=0.1, rotate_degrees=10.0, zoom=0.1, flip=False, contrast=0.2, brightness=0.1,
    seed=0, name="augment",
):
    """Label-preserving random transforms (the chapter's dataset augmentation).

    Keras preprocessing layers inside the model run on the accelerator and are
    identity at inference, so the exported model needs no special case.
    """
    steps = [
        layers.RandomTranslation(translate, translate, fill_mode="constant", seed=seed),
        layers.RandomRotation(rotate_degrees / 360.0, fill_mode="constant", seed=seed + 1),
        layers.RandomZoom(zoom, fill_mode="constant", seed=seed + 2),
    ]
    if flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed + 3))
    if contrast:
        steps.append(layers.RandomContrast(contrast, value_range=(0, 1), seed=seed + 4))
    if brightness:
        steps.append(layers.RandomBrightness(brightness, value_range=(0, 1), seed=seed + 5))
    return keras.Sequential(steps, name=name)


def build_normalization(kind="gcn", gcn_regularization=0.0, lcn_window_size=5, lcn_window="gaussian"):
    if kind == "gcn":
        return GlobalContrastNormalization(regularization=gcn_regularization, name="normalize")
    if kind == "lcn":
        return LocalContrastNormalization(
            window_size=lcn_window_size, window=lcn_window, name="normalize"
        )
    if kind == "none":
        return layers.Identity(name="normalize")
    raise ValueError(f"normalization must be none, gcn or lcn, got '{kind}'.")


def residual_block(x, filters, stride, name):
    """Two 3x3 convolutions with batch norm and a projection shortcut when shapes change."""
    shortcut = x
    y = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = batch_norm(f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = batch_norm(f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = batch_norm(f"{name}_proj_bn")(shortcut)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def build_resnet_backbone(input_shape, widths=(32, 64, 128), blocks_per_stage=1):
    """A small residual CNN: stem, one stage per width (stride 2 after the first), GAP."""
    inputs = keras.Input(input_shape, name="normalized_images")
    x = layers.Conv2D(widths[0], 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.ReLU(name="stem_relu")(batch_norm("stem_bn")(x))
    for stage, filters in enumerate(widths):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            x = residual_block(x, filters, stride, name=f"stage{stage}_block{block}")
    features = layers.GlobalAveragePooling2D(name="pool")(x)  # (B, widths[-1])
    return keras.Model(inputs, features, name="backbone")


def build_applications_backbone(input_shape, name="mobilenet_v2", weights_path=""):
    """A Keras Applications backbone, with weights=None or a local weights file.

    Applications expect 3 channels and at least 32x32 pixels, so grayscale or small
    inputs are tiled and resized inside the backbone.
    """
    constructors = {
        "mobilenet_v2": keras.applications.MobileNetV2,
        "efficientnet_b0": keras.applications.EfficientNetB0,
        "resnet50": keras.applications.ResNet50,
    }
    size = max(32, input_shape[0])
    inputs = keras.Input(input_shape, name="normalized_images")
    x = layers.Resizing(size, size, name="to_backbone_size")(inputs) if size != input_shape[0] else inputs
    if input_shape[-1] == 1:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    kwargs = {"include_top": False, "weights": None, "input_shape": (size, size, 3), "pooling": "avg"}
    if name == "efficientnet_b0":
        kwargs["include_preprocessing"] = False  # our normalization layer already scaled it
    application = constructors[name](**kwargs)
    if weights_path:
        application.load_weights(weights_path)
    return keras.Model(inputs, application(x), name="backbone")


# === Functional Model ===
def build_classifier(backbone, num_classes, input_shape, augmentation, normalization, dropout=0.2, experts=None):
    """Wires the named parts into one model; also used by fine-tuning to swap the head.
    `experts`: a MixtureOfExperts layer between the backbone and the head (head=moe), or None."""
    inputs = keras.Input(input_shape, name="images")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = normalization(x)
    features = backbone(x)
    if experts is not None:
        features = experts(features)
    features = layers.Dropout(dropout, name="dropout")(features)
    # The head computes in float32 so softmax stays accurate under mixed precision.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="head")(features)
    return keras.Model(inputs, outputs, name="vision_classifier")


def build_model(
    num_classes, image_size=16, channels=1, normalization="gcn", gcn_regularization=0.0,
    lcn_window_size=5, lcn_window="gaussian", backbone="resnet", backbone_weights="",
    widths=(32, 64, 128), blocks_per_stage=1, dropout=0.2, augmentation=None, head="dense", moe_experts=4,
    moe_top_k=2, moe_hidden_units=64, moe_dispatch="dense",
):
    """Builds the classifier.

    Args:
        num_classes: int. Output classes.
        image_size: int. Input height and width.
        channels: int. 1 or 3.
        normalization: str. "none", "gcn" or "lcn".
        backbone: str. "resnet" (ours) or a Keras Applications name.
        augmentation: keras.Layer or None. From `build_augmentation`.
        head: str. "dense" (a softmax over the backbone's features) or "moe": first a gated
            mixture of `moe_experts` Dense experts (`moe_hidden_units` hidden units, the
            `moe_top_k` best per image; shared/layers/mixture_of_experts.py), run by
            `moe_dispatch` ("dense": every expert on every image; "capacity": slots per expert).
    """
    input_shape = (image_size, image_size, channels)
    if backbone == "resnet":
        body = build_resnet_backbone(input_shape, widths, blocks_per_stage)
    else:
        body = build_applications_backbone(input_shape, backbone, backbone_weights)
    norm = build_normalization(normalization, gcn_regularization, lcn_window_size, lcn_window)
    experts = None
    if head == "moe":
        experts = MixtureOfExperts(moe_experts, units=body.output.shape[-1], hidden_units=moe_hidden_units,
                                   top_k=moe_top_k, dispatch=moe_dispatch, name="experts")
    return build_classifier(body, num_classes, input_shape, augmentation, norm, dropout, experts)


def replace_head(model, num_classes, augmentation=None, dropout=0.2):
    """Keeps a trained model's normalization and backbone, with a new head for new labels."""
    return build_classifier(
        model.get_layer("backbone"), num_classes, model.input_shape[1:],
        augmentation, model.get_layer("normalize"), dropout, _experts(model),
    )


def _experts(model):
    """The model's mixture-of-experts layer (head=moe), or None."""
    return model.get_layer("experts") if any(layer.name == "experts" for layer in model.layers) else None


def inference_model(model):
    """The trained model without its augmentation: images -> normalize -> backbone -> head.

    Rebuilt from named layers (dropout is identity at inference), so the export
    graph holds no random-number state. A cascade (apps/vision/cascade.py) is made of two such
    inference models already and is returned as it is.
    """
    if any(layer.name == "cascade" for layer in model.layers):
        return model
    inputs = keras.Input(model.input_shape[1:], name="images")
    features = model.get_layer("backbone")(model.get_layer("normalize")(inputs))
    if _experts(model) is not None:
        features = _experts(model)(features)
    return keras.Model(inputs, model.get_layer("head")(features), name="vision_inference")

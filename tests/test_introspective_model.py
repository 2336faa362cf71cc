"""IntrospectiveModel: loss, training step, schedules, serialization, errors."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import SOFTMAX_HEADS, tiny_backbone

import keras_introspect as ki
from keras_introspect import backbones, explainers
from keras_introspect.soft_targets import ExplanationSoftTargets

ALPHA, T, EPS, TAU = 0.3, 2.0, 0.2, 0.5


def make_model(backbone=None, **kwargs):
    options = dict(
        explainer=explainers.CAM(relu=False),
        soft_targets=ExplanationSoftTargets(form="mass", epsilon=EPS, temperature=TAU),
        alpha=ALPHA,
        temperature=T,
        warmup_epochs=0,  # distil from the first step (the default warms up for 5 epochs)
        ramp_epochs=0,
    )
    options.update(kwargs)
    return ki.IntrospectiveModel(backbone or tiny_backbone(), **options)


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def hand_targets(backbone, x, y):
    """q computed in numpy from the features and the Dense kernel."""
    features = keras.Model(backbone.input, backbone.get_layer("features").output)(x).numpy().astype("float64")
    kernel = backbone.get_layer("logits").kernel.numpy()
    maps = np.einsum("bhwc,ck->bkhw", features, kernel).reshape(len(x), kernel.shape[1], -1)
    maps = maps - maps.mean(-1, keepdims=True)
    ref = maps[np.arange(len(x)), y][:, None]
    sims = (maps * ref).sum(-1) / (np.linalg.norm(maps, axis=-1) * np.linalg.norm(ref, axis=-1))
    q = np.zeros_like(sims)
    for i, label in enumerate(y):
        others = [j for j in range(sims.shape[1]) if j != label]
        w = np.exp(sims[i, others] / TAU)
        q[i, others] = EPS * w / w.sum()
        q[i, label] = 1 - EPS
    return q


def hand_loss(backbone, x, y):
    """Per-example (1-a)·CE + a·T²·KL(q ‖ softmax(z/T)) in numpy."""
    z = backbone(x).numpy().astype("float64")
    q = hand_targets(backbone, x, y)
    ce = -log_softmax(z)[np.arange(len(y)), y]
    kl = (q * (np.log(q) - log_softmax(z / T))).sum(-1)
    return (1 - ALPHA) * ce + ALPHA * T**2 * kl


def test_soft_targets_match_hand_computation(images, labels):
    model = make_model()
    q = model.soft_targets(images, labels).numpy()
    np.testing.assert_allclose(q, hand_targets(model.backbone, images, labels), atol=1e-5)


def test_logged_loss_equals_hand_computation(images, labels):
    model = make_model()
    model.compile(optimizer=keras.optimizers.SGD(0.0), metrics=["accuracy"])
    logs = model.train_on_batch(images, labels, return_dict=True)
    np.testing.assert_allclose(logs["loss"], hand_loss(model.backbone, images, labels).mean(), rtol=1e-5)
    assert logs["alpha"] == pytest.approx(ALPHA)


def test_one_step_moves_weights_by_the_hand_gradient(images, labels):
    model = make_model()
    backbone = model.backbone
    q = tf.constant(hand_targets(backbone, images, labels), tf.float32)
    with tf.GradientTape() as tape:
        z = backbone(images)
        ce = tf.keras.losses.sparse_categorical_crossentropy(labels, z, from_logits=True)
        log_p = tf.nn.log_softmax(z / T)
        kl = tf.reduce_sum(tf.math.xlogy(q, q) - q * log_p, axis=-1)
        loss = tf.reduce_mean((1 - ALPHA) * ce + ALPHA * T**2 * kl)
    grads = tape.gradient(loss, backbone.trainable_weights)
    expected = [w.numpy() - 0.1 * g.numpy() for w, g in zip(backbone.trainable_weights, grads)]
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.train_on_batch(images, labels)
    for w, e in zip(backbone.trainable_weights, expected):
        np.testing.assert_allclose(w.numpy(), e, atol=1e-5)


def test_with_equal_similarities_a_step_is_label_smoothing_with_the_same_non_true_mass(images, labels):
    """The benchmark's `<IL>_uniform` control (docs/comparators.md): at T = 1 and a huge target
    temperature, IL moves the weights as label smoothing with s = a·ε·K/(K − 1) does."""
    il = make_model(temperature=1.0, soft_targets=ExplanationSoftTargets(form="mass", epsilon=EPS, temperature=1e6))
    classes = il.backbone.outputs[0].shape[-1]
    ls = ki.StandardModel(tiny_backbone(), label_smoothing=ALPHA * EPS * classes / (classes - 1))
    for model in (il, ls):
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        model.train_on_batch(images, labels)
    moved = [np.abs(w.numpy() - w0.numpy()).max() for w, w0 in zip(il.backbone.trainable_weights,
                                                                    tiny_backbone().trainable_weights)]
    assert max(moved) > 1e-2  # the step is large enough to tell the two apart
    for a, b in zip(il.backbone.trainable_weights, ls.backbone.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_one_hot_and_integer_labels_agree(images, labels):
    model = make_model()
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    a = model.train_on_batch(images, labels, return_dict=True)["loss"]
    b = model.train_on_batch(images, keras.utils.to_categorical(labels, 5), return_dict=True)["loss"]
    assert a == pytest.approx(b, rel=1e-6)


def test_sample_weights_follow_sum_over_batch_size(images, labels):
    model = make_model()
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    weights = np.array([1.0, 1.0, 0.0, 0.0], "float32")
    loss = model.train_on_batch(images, labels, sample_weight=weights, return_dict=True)["loss"]
    per_example = hand_loss(model.backbone, images, labels)
    assert loss == pytest.approx(per_example[:2].sum() / 4, rel=1e-5)


def test_batchnorm_statistics_update_once_per_step(images, labels):
    il = make_model(tiny_backbone(batchnorm=True, seed=1))
    std = ki.StandardModel(tiny_backbone(batchnorm=True, seed=1))
    for model in (il, std):
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        model.train_on_batch(images, labels)
    for name in ("moving_mean", "moving_variance"):
        a = [v for v in il.backbone.get_layer("bn1").weights if name in v.path][0]
        b = [v for v in std.backbone.get_layer("bn1").weights if name in v.path][0]
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    fresh = tiny_backbone(batchnorm=True, seed=1).get_layer("bn1").moving_mean.numpy()
    assert not np.allclose(il.backbone.get_layer("bn1").moving_mean.numpy(), fresh)


def test_input_gradient_explainer_trains(images, labels):
    model = make_model(explainer="vanilla_gradients")
    q = model.soft_targets(images, labels).numpy()
    np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-5)
    # Real input gradients differ per class, so the non-true mass is not uniform.
    assert np.ptp(np.sort(q, axis=-1)[:, :-1], axis=-1).max() > 1e-3
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    logs = model.train_on_batch(images, labels, return_dict=True)
    assert np.isfinite(logs["loss"])


def test_top_k_explains_true_class_plus_k_others(images, labels):
    model = make_model(explained_classes=2)
    q = model.soft_targets(images, labels).numpy()
    assert ((q > 0).sum(-1) == 3).all()
    np.testing.assert_allclose(q[np.arange(4), labels], 1 - EPS, atol=1e-6)
    logits = model.backbone(images).numpy()
    for i, y in enumerate(labels):
        others = [c for c in np.argsort(-logits[i]) if c != y][:2]
        assert set(np.flatnonzero(q[i])) == {y, *others}


def test_warmup_and_ramp_schedule_alpha():
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
    y = np.arange(16) % 5
    model = make_model(warmup_epochs=1, ramp_epochs=2, alpha=0.6)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0)
    np.testing.assert_allclose(history.history["alpha"], [0.0, 0.3, 0.6, 0.6], atol=1e-6)
    assert history.history["loss"][0] == pytest.approx(history.history["cross_entropy"][0], rel=1e-5)


@pytest.mark.parametrize("kind", SOFTMAX_HEADS)
def test_softmax_backbone_uses_logits(images, labels, kind):
    """Every way of writing a softmax head is recognised by what it computes, not by its name."""
    logits_model = make_model(tiny_backbone(seed=4))
    softmax_model = make_model(tiny_backbone(seed=4, softmax=kind))
    assert softmax_model.has_softmax and not logits_model.has_softmax
    np.testing.assert_allclose(
        softmax_model.soft_targets(images, labels).numpy(),
        logits_model.soft_targets(images, labels).numpy(), atol=1e-5,
    )
    probabilities = softmax_model.predict(images, verbose=0)
    np.testing.assert_allclose(probabilities, tf.nn.softmax(logits_model.predict(images, verbose=0)), atol=1e-5)
    # Training distils and evaluates the logits: the same step as the logits head.
    for model in (logits_model, softmax_model):
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    a = logits_model.train_on_batch(images, labels, return_dict=True)["loss"]
    b = softmax_model.train_on_batch(images, labels, return_dict=True)["loss"]
    assert a == pytest.approx(b, rel=1e-5)


def test_probability_heads_whose_logits_cannot_be_recovered_are_refused():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    # A softmax followed by an identity: outputs are probabilities, the last layer is not a softmax.
    probabilities = keras.layers.Lambda(lambda p: p * 1.0)(keras.layers.Dense(5, activation="softmax")(x))
    with pytest.raises(backbones.BackboneError, match="outputs probabilities"):
        ki.IntrospectiveModel(keras.Model(inputs, probabilities))


def test_explain_shapes_and_classes(images):
    model = make_model()
    every = model.explain(images, classes="all").numpy()
    assert every.shape == (4, 5, 8, 8)
    np.testing.assert_allclose(every, explainers.CAM()(model.backbone, images).numpy(), atol=1e-6)
    predicted = np.argmax(model.predict(images, verbose=0), -1)
    assert model.explain(images).shape == (4, 8, 8)
    np.testing.assert_allclose(model.explain(images), every[np.arange(4), predicted], atol=1e-6)
    chosen = (predicted + 1) % 5  # not the predicted classes, so a default in their place shows
    np.testing.assert_allclose(model.explain(images, classes=chosen), every[np.arange(4), chosen], atol=1e-6)
    np.testing.assert_allclose(model.explain(images, classes=2), every[:, 2], atol=1e-6)
    with pytest.raises(ValueError, match=re.escape("classes must be None, an int, an array or 'all'; got 'top'.")):
        model.explain(images, classes="top")


def test_inspection_runs_in_inference_mode(images, labels):
    """soft_targets and explain use BatchNorm's moving statistics and change no weight."""
    model = make_model(tiny_backbone(batchnorm=True))
    model.backbone.get_layer("bn1").moving_mean.assign(np.full(6, 0.3, "float32"))
    before = [np.array(w) for w in model.weights]
    q = model.soft_targets(images, labels).numpy()
    np.testing.assert_allclose(q, hand_targets(model.backbone, images, labels), atol=1e-5)
    model.explain(images)
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(np.array(w), b)
    # Integer images are the same values in floats, also for explainers that differentiate the input.
    integers = np.round(images * 3).astype("int32")
    for model in (model, make_model(explainer="vanilla_gradients")):
        np.testing.assert_allclose(model.soft_targets(integers, labels).numpy(),
                                   model.soft_targets(integers.astype("float32"), labels).numpy(), atol=1e-6)


class UnregisteredCAM(explainers.CAM):
    """A user's explainer that Keras's registry does not know."""


class UnregisteredScale(keras.layers.Layer):
    """A user's layer that Keras's registry does not know."""

    def call(self, x):
        return 2.0 * x


def test_from_config_passes_custom_objects_to_the_explainer_and_the_backbone(images):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="features")(UnregisteredScale()(inputs))
    backbone = keras.Model(inputs, keras.layers.Dense(5, name="logits")(keras.layers.GlobalAveragePooling2D()(x)))
    model = make_model(backbone, explainer=UnregisteredCAM(relu=True))
    config = keras.saving.serialize_keras_object(model)["config"]
    for missing in ("UnregisteredCAM", "UnregisteredScale"):
        known = {"UnregisteredCAM": UnregisteredCAM, "UnregisteredScale": UnregisteredScale}
        del known[missing]
        with pytest.raises(TypeError):  # Keras's message names the class only for the explainer
            ki.IntrospectiveModel.from_config(config, custom_objects=known)
    # The failed calls above left the config intact: from_config reads it, never consumes it.
    copy = ki.IntrospectiveModel.from_config(
        config, custom_objects={"UnregisteredCAM": UnregisteredCAM, "UnregisteredScale": UnregisteredScale})
    assert type(copy.explainer) is UnregisteredCAM and copy.explainer.relu is True
    copy.set_weights(model.get_weights())
    np.testing.assert_allclose(copy.explain(images), model.explain(images), atol=1e-6)


def test_save_load_round_trip_and_continue_training(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
    y = np.arange(16) % 5
    model = make_model(explained_classes=3, warmup_epochs=1)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "il.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ki.IntrospectiveModel)
    config, loaded_config = model.get_config(), loaded.get_config()
    assert {k: v for k, v in loaded_config.items() if k != "backbone"} == {k: v for k, v in config.items() if k != "backbone"}
    assert [layer.name for layer in loaded.backbone.layers] == [layer.name for layer in model.backbone.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_allclose(loaded.soft_targets(x, y), model.soft_targets(x, y), atol=1e-6)
    assert int(loaded.optimizer.iterations.numpy()) == 4
    a = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"]
    b = loaded.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"]
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_evaluate_reports_cross_entropy_and_metrics(images, labels):
    model = make_model()
    model.compile(optimizer="sgd", metrics=["accuracy"])
    logs = model.evaluate(images, labels, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "cross_entropy", "accuracy"}
    z = model.backbone(images).numpy()
    assert logs["loss"] == pytest.approx(-log_softmax(z)[np.arange(4), labels].mean(), rel=1e-5)


def test_bad_inputs_raise_clear_errors(images, labels):
    model = make_model()
    model.compile(optimizer="sgd")
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels must be < 5"):
        model.train_on_batch(images, np.array([0, 1, 2, 9]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels must be >= 0"):
        model.train_on_batch(images, np.array([0, 1, 2, -1]))
    with pytest.raises(ValueError, match="do not fit a 5-class model"):
        model.train_on_batch(images, np.zeros((4, 3), "float32"))
    bad = make_model()
    bad.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="computes its own loss"):
        bad.train_on_batch(images, labels)


REFUSED = [
    (dict(explainer="smoothgrad"), "SmoothGrad needs several forward passes and cannot run inside the training "
                                   "step; choose one of ('cam', 'grad_cam', 'vanilla_gradients', 'gradient_input')."),
    (dict(alpha=1.5), "alpha must be in [0, 1], got 1.5."),
    (dict(alpha=-0.1), "alpha must be in [0, 1], got -0.1."),
    (dict(temperature=0.0), "temperature must be > 0, got 0.0."),
    (dict(warmup_epochs=-1), "Option warmup_epochs must be >= 0, got -1."),
    (dict(ramp_epochs=-1), "Option ramp_epochs must be >= 0, got -1."),
    (dict(explained_classes=True), "Option explained_classes must be a number or one of ('all',), got True."),
    (dict(explained_classes="2"), "Option explained_classes must be a number or one of ('all',), got '2'."),
    (dict(explained_classes=2.5), "Option explained_classes must be a whole number, got 2.5."),
    (dict(explained_classes=0), "Option explained_classes must be >= 1, got 0."),
    (dict(explained_classes=5), "explained_classes=5 must be between 1 and 4"),
    (dict(target_ema=1.0, num_examples=4), "target_ema must be in [0, 1), got 1.0."),
    (dict(target_ema=-0.5, num_examples=4), "target_ema must be in [0, 1), got -0.5."),
    (dict(target_ema=0.5, num_examples=0), "target_ema keeps a target per training example: pass num_examples "
                                           "(the training set's size)."),
    (dict(class_targets=True, class_momentum=1.0), "class_momentum must be in [0, 1), got 1.0."),
    (dict(class_targets=True, class_momentum=-0.1), "class_momentum must be in [0, 1), got -0.1."),
    (dict(mass_schedule="cosine"), "mass_schedule must be one of ('constant', 'linear'), got 'cosine'."),
    (dict(mass_schedule="linear", soft_targets=ExplanationSoftTargets(form="nontarget")),
     "mass_schedule schedules the non-true mass of the 'mass' form; use form='mass'."),
    (dict(class_targets=True, explained_classes=2),
     "class_targets averages similarities to every class: use explained_classes='all'."),
]


@pytest.mark.parametrize("options, message", REFUSED)
def test_each_bad_option_is_refused_with_its_message(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_model(**options)


@pytest.mark.parametrize("options, check", [
    (dict(alpha=0.0), lambda m: m.alpha == 0.0),
    (dict(alpha=1.0), lambda m: m.alpha == 1.0),
    (dict(warmup_epochs=0, ramp_epochs=0), lambda m: (m.warmup_epochs, m.ramp_epochs) == (0, 0)),
    (dict(explained_classes=1), lambda m: m.explained_classes == 1),
    (dict(explained_classes=3), lambda m: m.explained_classes == 3),
    (dict(explained_classes=4), lambda m: m.explained_classes == "all"),  # every non-true class
    (dict(target_ema=0.0), lambda m: not m.needs_example_ids),
    (dict(target_ema=0.5, num_examples=1), lambda m: m.example_targets.shape == (1, 5)),
    (dict(class_targets=True, class_momentum=0.0), lambda m: m.class_momentum == 0.0),
])
def test_options_at_their_limits_are_accepted(options, check):
    assert check(make_model(**options))


def test_variant_state_is_named_float32_and_not_trained():
    model = variant_model(target_ema=0.5, num_examples=3, class_targets=True, mass_schedule="linear")
    state = {v.name: v for v in model.non_trainable_weights}
    shapes = {"example_targets": (3, 5), "example_seen": (3,), "class_similarity": (5, 5), "class_seen": (5,),
              "total_epochs": ()}
    assert {name: tuple(state[name].shape) for name in shapes} == shapes
    assert all(state[name].dtype == "float32" for name in shapes)
    assert len(model.trainable_weights) == len(model.backbone.trainable_weights)
    assert float(model.total_epochs.numpy()) == 1.0  # until fit sets the run's length


def test_linear_mass_reaches_epsilon_on_the_last_epoch_and_stays_there():
    model = variant_model(mass_schedule="linear")
    for epoch, total, fraction in [(0, 1, 1.0), (0, 4, 0.25), (3, 4, 1.0), (6, 4, 1.0)]:
        model.epoch.assign(float(epoch))
        model.total_epochs.assign(float(total))
        assert float(model.current_epsilon()) == pytest.approx(EPS * fraction)
    assert variant_model().current_epsilon() is None


def test_without_a_ramp_distillation_starts_exactly_after_the_warm_up():
    model = make_model(warmup_epochs=2, ramp_epochs=0, alpha=0.4)
    for epoch, alpha in [(0, 0.0), (1, 0.0), (2, 0.4), (3, 0.4)]:
        model.epoch.assign(float(epoch))
        assert float(model.current_alpha()) == pytest.approx(alpha)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(keras.ops.reshape(x, (-1, 8 * 8 * 3)))


def test_unsupported_backbones_are_rejected(images):
    sub = Subclassed()
    sub(images)
    with pytest.raises(backbones.BackboneError, match="subclassed"):
        ki.IntrospectiveModel(sub)
    inputs = keras.Input((8, 8, 3))
    with pytest.raises(backbones.BackboneError, match="sigmoid"):
        ki.IntrospectiveModel(keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid")(keras.layers.Flatten()(inputs))))
    with pytest.raises(backbones.BackboneError, match=r"outputs shape \(None, 8, 8, 2\)"):
        ki.IntrospectiveModel(keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs)))
    with pytest.raises(backbones.BackboneError, match="keras.Model"):
        ki.IntrospectiveModel("resnet20")


@pytest.mark.parametrize("explainer", [None, "cam", "grad_cam", "vanilla_gradients"])
def test_registry_defaults_match_model_defaults(explainer):
    """One name, one meaning: the class, the registry and the command line build the same model."""
    from keras_introspect.methods import registry

    given = {} if explainer is None else {"explainer": explainer}
    a = ki.IntrospectiveModel(tiny_backbone(), **given).get_config()
    b = registry.build_method("il", tiny_backbone(), **given).get_config()
    for key in ("explainer", "soft_targets", "alpha", "temperature", "explained_classes", "warmup_epochs", "ramp_epochs"):
        assert a[key] == b[key], key


def test_a_shared_explainer_keeps_each_models_targets(images, labels):
    """One CAM instance given to two models: each model's soft targets use its own kernel."""
    shared = explainers.CAM()
    first = make_model(tiny_backbone(seed=1), explainer=shared)
    before = first.soft_targets(images, labels).numpy()
    second = make_model(tiny_backbone(seed=2), explainer=shared)
    second.explain(images)
    np.testing.assert_allclose(first.soft_targets(images, labels).numpy(), before, atol=1e-6)
    np.testing.assert_allclose(before, hand_targets(first.backbone, images, labels), atol=1e-5)


def test_nontarget_distillation_matches_hand_computation(images, labels):
    model = make_model(soft_targets=ExplanationSoftTargets(form="nontarget", temperature=TAU))
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = model.train_on_batch(images, labels, return_dict=True)
    z = model.backbone(images).numpy().astype("float64")
    q = hand_targets(model.backbone, images, labels) / EPS
    q[np.arange(4), labels] = 0.0
    ce = -log_softmax(z)[np.arange(4), labels]
    kl = np.zeros(4)
    for i, y in enumerate(labels):
        others = [j for j in range(5) if j != y]
        log_p = log_softmax(z[i, others] / T)
        kl[i] = (q[i, others] * (np.log(q[i, others]) - log_p)).sum()
    expected = ((1 - ALPHA) * ce + ALPHA * T**2 * kl).mean()
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["target_true_mass"] == pytest.approx(0.0)


# -- the target variants (docs/method.md): smoothed over epochs, per class, rising mass -----------

def variant_model(**kwargs):
    return make_model(tiny_backbone(seed=1), **kwargs)


def test_target_ema_averages_each_examples_target_over_epochs(images, labels):
    model = variant_model(target_ema=0.75, num_examples=10)
    ids = np.array([2, 7, 0, 9])
    previous = np.random.default_rng(1).dirichlet(np.ones(5), size=10).astype("float32")
    model.example_targets.assign(previous)
    model.example_seen.assign(np.array([1, 1, 1, 1, 1, 1, 1, 0, 1, 0], "float32"))  # 7 and 9 not seen yet
    onehot = np.eye(5, dtype="float32")[labels]
    logits, loss, terms = model.compute_terms({"images": images, "example_id": ids}, onehot, labels, None)
    q_now = hand_targets(model.backbone, images, labels)
    seen = np.array([True, False, True, False])[:, None]
    expected = np.where(seen, 0.75 * previous[ids] + 0.25 * q_now, q_now)
    np.testing.assert_allclose(model.example_targets.numpy()[ids], expected, atol=1e-5)
    assert model.example_seen.numpy()[[7, 9]].tolist() == [1.0, 1.0]
    z = logits.numpy().astype("float64")
    kl = (expected * (np.log(expected) - log_softmax(z / T))).sum(-1) * T**2
    ce = -log_softmax(z)[np.arange(4), labels]
    np.testing.assert_allclose(loss.numpy(), (1 - ALPHA) * ce + ALPHA * kl, rtol=1e-4)
    with pytest.raises(ValueError, match="pass num_examples"):
        variant_model(target_ema=0.5)


def test_class_targets_are_running_means_of_class_similarities(images):
    labels = np.array([1, 1, 3, 1], "int32")
    model = variant_model(class_targets=True, class_momentum=0.5)
    onehot = np.eye(5, dtype="float32")[labels]

    def batch_sims(x):
        return model.target_builder.similarities(model.explainer(model.backbone, x), labels).numpy()

    sims = batch_sims(images)
    model.compute_terms(images, onehot, labels, None)
    table = model.class_similarity.numpy()
    np.testing.assert_allclose(table[1], sims[[0, 1, 3]].mean(0), atol=1e-5)  # the first batch sets the row
    np.testing.assert_allclose(table[3], sims[2], atol=1e-5)
    assert model.class_seen.numpy().tolist() == [0, 1, 0, 1, 0]
    other = images[::-1].copy()
    sims2 = batch_sims(other)
    _, _, terms = model.compute_terms(other, onehot, labels, None)
    expected = 0.5 * table[1] + 0.5 * sims2[[0, 1, 3]].mean(0)
    np.testing.assert_allclose(model.class_similarity.numpy()[1], expected, atol=1e-5)
    # The soft target of every class-1 example is the mass form of its class's row.
    q = model.soft_targets(other, labels).numpy()
    np.testing.assert_allclose(q[0], q[1], atol=1e-6)
    others = [0, 2, 3, 4]
    w = np.exp(model.class_similarity.numpy()[1, others] / TAU)
    np.testing.assert_allclose(q[0, others], EPS * w / w.sum(), rtol=1e-4)
    with pytest.raises(ValueError, match="explained_classes='all'"):
        variant_model(class_targets=True, explained_classes=2)


def test_linear_mass_schedule_rises_over_the_run(images, labels):
    model = variant_model(mass_schedule="linear")
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    x, y = np.concatenate([images] * 2), np.concatenate([labels] * 2)
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0)
    np.testing.assert_allclose(history.history["target_true_mass"], [1 - EPS * (t + 1) / 4 for t in range(4)],
                               atol=1e-5)
    with pytest.raises(ValueError, match="form='mass'"):
        variant_model(mass_schedule="linear", soft_targets=ExplanationSoftTargets(form="nontarget"))


def test_defaults_add_no_state_and_variants_round_trip(tmp_path, images, labels):
    plain = variant_model()
    assert not hasattr(plain, "example_targets") and not hasattr(plain, "class_similarity")
    model = variant_model(target_ema=0.5, num_examples=4, class_targets=True, mass_schedule="linear")
    data = tf.data.Dataset.from_tensor_slices((images, labels, np.arange(4))).map(ki.data.with_example_id).batch(2)
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    model.fit(data, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_config()["target_ema"] == 0.5 and loaded.class_targets and loaded.mass_schedule == "linear"
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

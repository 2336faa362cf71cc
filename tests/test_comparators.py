"""Teacher KD (and its dissection), deep mutual learning, label smoothing, confidence penalty."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import fit_each_method, tiny_backbone

import keras_introspect as ki
from keras_introspect.methods.teacher_kd import shuffle_non_true, uniform_non_true


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def first_step_loss(model, images, labels):
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    return model.train_on_batch(images, labels, return_dict=True)


def test_kd_loss_matches_hand_computation(images, labels):
    teacher, student = tiny_backbone(seed=1), tiny_backbone(seed=2)
    logs = first_step_loss(ki.TeacherDistillationModel(student, teacher, alpha=0.7, temperature=3.0), images, labels)
    zs, zt = student(images).numpy().astype("float64"), teacher(images).numpy().astype("float64")
    q = np.exp(log_softmax(zt / 3.0))
    kl = (q * (np.log(q) - log_softmax(zs / 3.0))).sum(-1)
    ce = -log_softmax(zs)[np.arange(4), labels]
    assert logs["loss"] == pytest.approx((0.3 * ce + 0.7 * 9.0 * kl).mean(), rel=1e-5)


def test_kd_term_equals_keras_logits_distillation(images, labels):
    teacher, student = tiny_backbone(seed=1), tiny_backbone(seed=2)
    logs = first_step_loss(ki.TeacherDistillationModel(student, teacher, alpha=1.0, temperature=4.0), images, labels)
    # With the default loss="kl_divergence" (a string), Keras 3.15 applies the KL
    # to the tempered logits themselves; the KLDivergence instance is the real KD.
    distillation = keras.distillation.LogitsDistillation(temperature=4.0, loss=keras.losses.KLDivergence())
    reference = distillation.compute_loss(teacher(images), student(images))
    assert logs["distillation"] == pytest.approx(float(reference), rel=1e-3)  # Keras clips p at 1e-7


def test_shuffled_targets_keep_true_mass_and_non_true_values():
    rng = np.random.default_rng(0)
    q = rng.dirichlet(np.ones(6), size=50).astype("float32")
    labels = rng.integers(0, 6, size=50).astype("int32")
    shuffled = shuffle_non_true(q, labels, seed=1).numpy()
    np.testing.assert_allclose(shuffled[np.arange(50), labels], q[np.arange(50), labels])
    moved = 0
    for i, y in enumerate(labels):
        others = [j for j in range(6) if j != y]
        np.testing.assert_allclose(np.sort(shuffled[i, others]), np.sort(q[i, others]), atol=1e-7)
        moved += not np.allclose(shuffled[i, others], q[i, others])
    assert moved > 40  # the order really changes


def test_uniform_targets_keep_true_mass_only():
    q = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
    out = uniform_non_true(q, np.array([0, 2], "int32")).numpy()
    np.testing.assert_allclose(out, [[0.7, 0.15, 0.15], [0.1, 0.1, 0.8]], atol=1e-7)


def test_kd_teacher_from_keras_file_and_round_trip(tmp_path, images, labels):
    teacher = ki.StandardModel(tiny_backbone(seed=1))
    teacher.save(tmp_path / "teacher.keras")
    model = ki.TeacherDistillationModel(tiny_backbone(seed=2), str(tmp_path / "teacher.keras"), teacher_targets="uniform")
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.fit(images, labels, epochs=1, verbose=0)
    model.save(tmp_path / "kd.keras")
    loaded = keras.saving.load_model(tmp_path / "kd.keras")
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
    assert loaded.teacher_targets == "uniform"
    np.testing.assert_array_equal(loaded.teacher(images), teacher.backbone(images))
    assert not any(w is v for w in model.trainable_weights for v in model.teacher.weights)
    with pytest.raises(ValueError, match="teacher has 3 classes"):
        ki.TeacherDistillationModel(tiny_backbone(), tiny_backbone(num_classes=3))
    with pytest.raises(ValueError, match="teacher file .* does not exist"):
        ki.TeacherDistillationModel(tiny_backbone(), str(tmp_path / "missing.keras"))


def test_dml_loss_matches_hand_computation(images, labels):
    a, b = tiny_backbone(seed=1), tiny_backbone(seed=2)
    logs = first_step_loss(ki.MutualLearningModel(a, peers=[b]), images, labels)
    za, zb = a(images).numpy().astype("float64"), b(images).numpy().astype("float64")
    pa, pb = np.exp(log_softmax(za)), np.exp(log_softmax(zb))
    ce_a, ce_b = -log_softmax(za)[np.arange(4), labels], -log_softmax(zb)[np.arange(4), labels]
    kl_a = (pb * (np.log(pb) - log_softmax(za))).sum(-1)
    kl_b = (pa * (np.log(pa) - log_softmax(zb))).sum(-1)
    assert logs["loss"] == pytest.approx((ce_a + kl_a + ce_b + kl_b).mean(), rel=1e-5)
    assert logs["distillation"] == pytest.approx(kl_a.mean(), rel=1e-5)


def test_dml_trains_every_peer_and_round_trips(tmp_path, images, labels):
    model = ki.MutualLearningModel(tiny_backbone(seed=1), num_peers=3)
    before = [p.get_layer("logits").kernel.numpy().copy() for p in model.peers]
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.fit(images, labels, epochs=1, verbose=0)
    assert all(not np.allclose(p.get_layer("logits").kernel.numpy(), b) for p, b in zip(model.peers, before))
    ensemble = model.ensemble_predict(images, verbose=0).numpy()
    np.testing.assert_allclose(ensemble.sum(-1), 1.0, atol=1e-5)
    model.save(tmp_path / "dml.keras")
    loaded = keras.saving.load_model(tmp_path / "dml.keras")
    np.testing.assert_allclose(loaded.ensemble_predict(images, verbose=0), ensemble, atol=1e-6)


@pytest.mark.parametrize("smoothing, penalty", [(0.2, 0.0), (0.0, 0.3)])
def test_regularizers_match_hand_computation(images, labels, smoothing, penalty):
    backbone = tiny_backbone(seed=3)
    logs = first_step_loss(ki.StandardModel(backbone, label_smoothing=smoothing, confidence_penalty=penalty), images, labels)
    z = backbone(images).numpy().astype("float64")
    targets = np.eye(5)[labels] * (1 - smoothing) + smoothing / 5
    log_p = log_softmax(z)
    expected = -(targets * log_p).sum(-1) + penalty * (np.exp(log_p) * log_p).sum(-1)
    assert logs["loss"] == pytest.approx(expected.mean(), rel=1e-5)
    assert logs["cross_entropy"] == pytest.approx(-log_p[np.arange(4), labels].mean(), rel=1e-5)


def test_teacher_free_virtual_teacher_matches_hand_computation(images, labels):
    backbone = tiny_backbone(seed=4)
    logs = first_step_loss(ki.TeacherFreeModel(backbone, correct_prob=0.9, temperature=5.0, alpha=0.4, multiplier=3.0),
                           images, labels)
    z = backbone(images).numpy().astype("float64")
    p_d = np.full((4, 5), 0.1 / 4)
    p_d[np.arange(4), labels] = 0.9
    q = np.exp(p_d / 5.0) / np.exp(p_d / 5.0).sum(-1, keepdims=True)
    kl = (q * (np.log(q) - log_softmax(z))).sum(-1)
    ce = -log_softmax(z)[np.arange(4), labels]
    assert logs["loss"] == pytest.approx((0.6 * ce + 0.4 * 3.0 * kl).mean(), rel=1e-5)


def test_every_recipe_method_trains_saves_and_exports(tmp_path, images, labels):
    # two resolutions: FRSKD needs stages
    fit_each_method(lambda: tiny_backbone(seed=1, conv2_strides=2), images, labels, tmp_path, tiny_backbone(seed=9))


def test_frskd_loss_matches_independent_computation():
    from keras_introspect.methods.frskd import attention_map, stage_layer_names

    model = ki.FRSKDModel(ki.architectures.resnet_cifar(8, 4, input_shape=(16, 16, 3)), alpha=2.0, beta=100.0)
    assert model.feature_layers == ["stage1_block1_out", "stage2_block1_out", "features"]
    assert stage_layer_names(model.backbone) == model.feature_layers
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    y = np.array([0, 1, 2, 3])
    # Forward both networks in training mode before the (zero-lr) step changes BN statistics.
    taps = keras.Model(model.backbone.input, [model.backbone.get_layer(n).output for n in model.feature_layers]
                       + [model.backbone.output])
    outs = taps(x, training=True)
    feats, z = outs[:-1], outs[-1].numpy().astype("float64")
    t_out = model.self_teacher(feats, training=True)
    zt, refined = t_out[0].numpy().astype("float64"), t_out[1:]
    logs = first_step_loss(model, x, y)
    ce = -log_softmax(z)[np.arange(4), y]
    ce_t = -log_softmax(zt)[np.arange(4), y]
    q = np.exp(log_softmax(zt / 4))
    kl = (q * (np.log(q) - log_softmax(z / 4))).sum(-1) * 16

    def att(f):
        a = (np.asarray(f, "float64") ** 2).mean(-1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=-1, keepdims=True)

    at = sum(((att(f) - att(r)) ** 2).mean(-1) for f, r in zip(feats, refined))
    np.testing.assert_allclose(attention_map(feats[0]).numpy(), att(feats[0]), atol=1e-5)
    assert logs["loss"] == pytest.approx((ce + ce_t + 2 * kl + 100 * at).mean(), rel=1e-4)


def test_frskd_exports_only_the_classifier(tmp_path):
    from keras_introspect.export import export_saved_model

    model = ki.FRSKDModel(ki.architectures.resnet_cifar(8, 4, input_shape=(16, 16, 3)))
    x = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    model.fit(x, np.arange(8) % 4, epochs=1, verbose=0)
    model.save(tmp_path / "frskd.keras")
    loaded = keras.saving.load_model(tmp_path / "frskd.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(loaded.self_teacher.get_weights()[0], model.self_teacher.get_weights()[0])
    served = tf.saved_model.load(export_saved_model(model, tmp_path / "export"))
    variables = {v.name for v in served.variables}
    assert not any("st_logits" in name or "fusion" in name for name in variables)


def test_isl_curriculum_orders_instances_easy_to_hard():
    from keras_introspect.methods import InstanceSequenceCurriculum

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    y = (np.arange(64) % 5).astype("int32")
    model = ki.StandardModel(tiny_backbone(seed=3))
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    curriculum = InstanceSequenceCurriculum(x, y, batch_size=16, epochs=4, phases=4, start_fraction=0.5)
    assert [curriculum.phase_of(e) for e in range(4)] == [0, 1, 2, 3]
    assert [curriculum.fraction(p) for p in range(4)] == [1.0, 0.5, 0.75, 1.0]
    model.fit(curriculum.dataset(), epochs=2, callbacks=[curriculum], verbose=0)
    # After the phase-1 snapshot: the easiest half, in ascending loss of that snapshot.
    assert len(curriculum.order) == 32 and curriculum.history[0][:2] == (1, 0.5)
    losses = curriculum.snapshot_losses()
    curriculum.on_epoch_begin(2)
    # Phase 2: the 48 instances of lowest loss, each once, easiest first.
    order = curriculum.order
    assert len(order) == 48 and len(set(order.tolist())) == 48
    assert losses[order].max() <= np.sort(losses)[47] < np.sort(losses)[48]
    assert (np.diff(losses[order]) >= 0).all()
    batch = next(iter(curriculum.dataset()))
    np.testing.assert_array_equal(batch[1].numpy(), y[curriculum.order[:16]])
    np.testing.assert_allclose(batch[0].numpy(), x[curriculum.order[:16]])


def test_isl_feeds_a_new_phase_its_order_from_the_first_step_and_continues_it():
    from keras_introspect.methods import InstanceSequenceCurriculum

    class Recording(ki.StandardModel):
        def train_step(self, data):
            self.seen.append(data[0].numpy())
            return super().train_step(data)

    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 8, 8, 3)).astype("float32")
    y = (np.arange(40) % 5).astype("int32")
    model = Recording(tiny_backbone(seed=3))
    model.seen = []
    model.compile(optimizer=keras.optimizers.SGD(0.05), run_eagerly=True)
    # 2 phases over 4 epochs: epochs 0-1 all instances at random, 2-3 all of them easy → hard;
    # 40 instances in batches of 16: 3 steps, i.e. 48 indices, per epoch.
    curriculum = InstanceSequenceCurriculum(x, y, batch_size=16, epochs=4, phases=2, augment=False)
    model.fit(curriculum.dataset(), epochs=4, callbacks=[curriculum], verbose=0)
    assert len(model.seen) == 12 and [e for e, *_ in curriculum.history] == [2]
    order = curriculum.order
    starts = [0, 16, 32, 48 % 40, 48 % 40 + 16, 48 % 40 + 32]  # epoch 3 goes on where epoch 2 stopped
    for seen, start in zip(model.seen[6:], starts):
        np.testing.assert_array_equal(seen, x[np.take(order, np.arange(start, start + 16), mode="wrap")])

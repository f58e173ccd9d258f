"""Knowledge distillation between detectors (convert.detection.distill_loss; `prune --distill-weight`): the loss is
0 when the student's outputs are the teacher's, its gradient moves every output part toward the teacher, and
training on it alone brings a different student's outputs toward the teacher's."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import require_module

tf = require_module("tensorflow")

from convert.detection.distill_loss import DistillLoss, binary_kl  # noqa: E402
from convert.detection.model import HEAD_ENTRIES, DetectorConfig, build_detector  # noqa: E402

CLASSES = 2


def _outputs(rng, head, batch=2, grid=(2, 2), scale=2.0):
    per = HEAD_ENTRIES[head] + CLASSES
    logits = rng.normal(0, scale, (batch, *grid, 3 * per)).astype(np.float32)
    linear = rng.normal(0, 0.5, (batch, *grid, 6)).astype(np.float32)
    return [logits, linear]


@pytest.mark.parametrize("head", ["gaussian", "plain"])
def test_the_loss_is_zero_when_the_student_outputs_the_teachers(head):
    rng = np.random.default_rng(0)
    teacher = _outputs(rng, head) + _outputs(rng, head, grid=(1, 1))   # two strides
    same = DistillLoss(head, CLASSES)([tf.constant(x) for x in teacher], [tf.constant(x) for x in teacher])
    for k in ("obj", "cls", "box", "total"):
        assert abs(float(same[k])) < 1e-5, (k, float(same[k]))
    other = DistillLoss(head, CLASSES)([tf.constant(x) for x in _outputs(rng, head) + _outputs(rng, head, grid=(1, 1))],
                                       [tf.constant(x) for x in teacher])
    for k in ("obj", "cls", "box"):
        assert float(other[k]) > 0.01, (k, float(other[k]))
    assert float(other["total"]) == pytest.approx(sum(float(other[k]) for k in ("obj", "cls", "box")), rel=1e-5)


def test_binary_kl_is_the_kl_divergence_of_two_bernoullis():
    t, s = np.array([-2.0, 0.3, 4.0], np.float32), np.array([1.0, 0.3, -1.0], np.float32)
    p, q = 1 / (1 + np.exp(-t.astype(np.float64))), 1 / (1 + np.exp(-s.astype(np.float64)))
    expected = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    np.testing.assert_allclose(binary_kl(tf.constant(t), tf.constant(s)).numpy(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("head", ["gaussian", "plain"])
def test_gradient_steps_move_every_output_part_toward_the_teacher(head):
    """Plain gradient descent on the student's raw outputs: the distance to the teacher shrinks for the objectness,
    the classes and the box entries (where the teacher sees an object), and the loss with it."""
    rng = np.random.default_rng(1)
    teacher = [tf.constant(x) for x in _outputs(rng, head)]
    student = [tf.Variable(x) for x in _outputs(rng, head)]
    loss_fn = DistillLoss(head, CLASSES)
    per, obj = HEAD_ENTRIES[head] + CLASSES, HEAD_ENTRIES[head] - 1

    def distances():
        s = tf.reshape(student[0], (2, 2, 2, 3, per)).numpy()
        t = tf.reshape(teacher[0], (2, 2, 2, 3, per)).numpy()
        return {"obj": np.abs(s[..., obj] - t[..., obj]).mean(), "cls": np.abs(s[..., obj + 1:] - t[..., obj + 1:]).mean(),
                "box": np.abs(s[..., :obj] - t[..., :obj]).mean(), "size": np.abs(student[1].numpy() - teacher[1].numpy()).mean()}

    before, loss_before = distances(), float(loss_fn(student, teacher)["total"])
    for _ in range(300):
        with tf.GradientTape() as tape:
            loss = loss_fn(student, teacher)["total"]
        for var, grad in zip(student, tape.gradient(loss, student)):
            var.assign_sub(0.5 * grad)
    after = distances()
    assert float(loss_fn(student, teacher)["total"]) < 0.1 * loss_before
    for k in before:
        assert after[k] < 0.7 * before[k], (k, before[k], after[k])


def test_the_teacher_gets_no_gradient():
    rng = np.random.default_rng(2)
    teacher = [tf.Variable(x) for x in _outputs(rng, "gaussian")]
    student = [tf.Variable(x) for x in _outputs(rng, "gaussian")]
    with tf.GradientTape() as tape:
        loss = DistillLoss("gaussian", CLASSES)(student, teacher)["total"]
    assert all(g is None for g in tape.gradient(loss, teacher))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from convert.cli import main
    data = tmp_path_factory.mktemp("distill") / "data"
    assert main(["synth", "--out", str(data), "--train", "12", "--val", "2", "--test", "2", "--size", "64"]) == 0
    return data


def _cfg(labels, **kw):
    return DetectorConfig(**{"backbone": "darknet_small", "input_size": (64, 64), "labels": labels, "neck_channels": 16, **kw})


def test_training_on_the_distillation_loss_alone_pulls_the_student_to_the_teacher(tiny_data, tmp_path):
    """Task losses weighted 0, distillation 1: the student (other random weights, other widths) learns the teacher's
    outputs; the history logs the term, falling."""
    from convert.detection.datasets import load_dataset
    from convert.detection.train import TrainConfig, train
    ds = load_dataset(tiny_data, "train")
    teacher = build_detector(_cfg(ds.names))
    teacher.train_model.set_weights([np.asarray(w) + np.random.default_rng(3).normal(0, 0.05, np.shape(w)).astype(np.float32)
                                     for w in teacher.train_model.get_weights()])
    cfg = TrainConfig(epochs=4, batch_size=4, steps_per_epoch=6, lr=3e-3, warmup_steps=0, augment=False,
                      box_weight=0, obj_weight=0, cls_weight=0, distill_weight=1.0, grad_log_every=0, threads=2)
    train(_cfg(ds.names, neck_channels=8), cfg, ds, tmp_path / "run", progress=False, log=lambda *_: None,
          teacher=teacher)
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    distill = [h["distill"] for h in history]
    assert distill[-1] < 0.5 * distill[0], distill
    assert json.loads((tmp_path / "run" / "train.json").read_text())["distill_weight"] == 1.0


def test_distillation_needs_a_teacher_and_a_weight_and_the_same_contract(tiny_data, tmp_path):
    from convert.detection.datasets import load_dataset
    from convert.detection.train import TrainConfig, train
    from edge.contract.errors import UsageError
    ds = load_dataset(tiny_data, "train")
    cfg = TrainConfig(epochs=1, batch_size=4, steps_per_epoch=1)
    with pytest.raises(UsageError, match="teacher=none, distill_weight=0.5"):
        train(_cfg(ds.names), cfg.model_copy(update={"distill_weight": 0.5}), ds, tmp_path / "a", progress=False)
    teacher = build_detector(_cfg(ds.names))
    with pytest.raises(UsageError, match="distill_weight=0.0"):
        train(_cfg(ds.names), cfg, ds, tmp_path / "b", progress=False, teacher=teacher)
    plain_teacher = build_detector(_cfg(ds.names, head="plain"))
    with pytest.raises(UsageError, match="same output contract"):
        train(_cfg(ds.names), cfg.model_copy(update={"distill_weight": 0.5}), ds, tmp_path / "c", progress=False,
              teacher=plain_teacher)

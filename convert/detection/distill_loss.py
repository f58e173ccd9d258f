"""Knowledge distillation between two detectors with the same head contract (e.g. a pruned student and its unpruned
teacher): a loss that pulls the student's outputs toward the teacher's on the same images.

Per anchor of every stride (the heads' raw training outputs, ``Detector.train_model``):

    obj   binary KL(p_t || p_s) of the objectness (teacher's probability as the soft target; 0 when they agree)
    cls   p_t(obj) * sum over classes of binary KL(q_t || q_s)
    box   p_t(obj) * 0.5 * sum of squared differences of the box: sigmoid centre offsets, linear log-size
          and, for the Gaussian head, the four sigmas (after their sigmoid)

The class and box terms are weighted by the teacher's objectness, so the student copies boxes where the teacher
sees an object, not the meaningless boxes of background anchors. Summed per image and averaged over the batch,
like :class:`convert.detection.loss.YoloLoss`. Every term is 0 when the student's outputs equal the teacher's.
"""
from __future__ import annotations

import tensorflow as tf

from convert.detection.anchors import ANCHORS_PER_SCALE
from convert.detection.model import HEAD_ENTRIES


def binary_kl(target_logit, logit):
    """KL(Bernoulli(sigmoid(target_logit)) || Bernoulli(sigmoid(logit))), elementwise, stable (cross-entropy
    minus the target's entropy)."""
    p = tf.sigmoid(target_logit)
    return (tf.nn.sigmoid_cross_entropy_with_logits(labels=p, logits=logit)
            - tf.nn.sigmoid_cross_entropy_with_logits(labels=p, logits=target_logit))


class DistillLoss:
    """Callable on (student train outputs, teacher train outputs) -> dict of scalar losses ('total', 'obj', 'cls',
    'box'); both lists as ``Detector.train_model`` returns them ([logits_s, linear_s, ...] in stride order)."""

    def __init__(self, head: str, num_classes: int):
        if head not in HEAD_ENTRIES:
            raise ValueError(f"unknown head {head!r}")
        self.head = head
        self.entries = HEAD_ENTRIES[head]
        self.per = self.entries + int(num_classes)

    def level(self, s_logits, s_linear, t_logits, t_linear):
        shape = tf.shape(s_logits)
        grid = [shape[0], shape[1], shape[2], ANCHORS_PER_SCALE]
        s_logits, t_logits = tf.reshape(s_logits, grid + [self.per]), tf.reshape(t_logits, grid + [self.per])
        s_linear, t_linear = tf.reshape(s_linear, grid + [2]), tf.reshape(t_linear, grid + [2])
        obj = self.entries - 1
        obj_kl = binary_kl(t_logits[..., obj], s_logits[..., obj])
        weight = tf.sigmoid(t_logits[..., obj])
        cls_kl = tf.reduce_sum(binary_kl(t_logits[..., self.entries:], s_logits[..., self.entries:]), -1)
        # centre offsets and (Gaussian head) sigmas are sigmoid outputs; the log-size is linear
        box_sq = tf.reduce_sum(tf.square(tf.sigmoid(s_logits[..., :obj]) - tf.sigmoid(t_logits[..., :obj])), -1)
        box_sq += tf.reduce_sum(tf.square(s_linear - t_linear), -1)
        return tf.reduce_sum(obj_kl), tf.reduce_sum(weight * cls_kl), tf.reduce_sum(weight * 0.5 * box_sq)

    def __call__(self, student_outputs, teacher_outputs) -> dict:
        if len(student_outputs) != len(teacher_outputs):
            raise ValueError(f"the student has {len(student_outputs)} outputs, the teacher {len(teacher_outputs)}: "
                             "distillation needs detectors with the same strides")
        batch = tf.cast(tf.shape(student_outputs[0])[0], tf.float32)
        parts = {"obj": 0.0, "cls": 0.0, "box": 0.0}
        for i in range(0, len(student_outputs), 2):
            obj, cls, box = self.level(student_outputs[i], student_outputs[i + 1],
                                       tf.stop_gradient(teacher_outputs[i]), tf.stop_gradient(teacher_outputs[i + 1]))
            parts["obj"] += obj
            parts["cls"] += cls
            parts["box"] += box
        parts = {k: v / batch for k, v in parts.items()}
        parts["total"] = parts["obj"] + parts["cls"] + parts["box"]
        return parts

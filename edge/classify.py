"""Classification output -> top-k classes and predictive entropy (the classifier's uncertainty).

Predictive entropy H(p) = -sum p_i ln p_i (nats): 0 for a one-hot prediction, ln(C) when every class
is equally likely. Reported per frame next to the top-k; ``normalized_entropy`` divides by ln(C).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64).reshape(-1)
    z = z - z.max()
    e = np.exp(z)
    return (e / e.sum()).astype(np.float32)


def to_probabilities(values: np.ndarray, activation: str) -> np.ndarray:
    """``activation`` from the metadata: 'softmax' (already probabilities) or 'logits'."""
    v = np.asarray(values, np.float32).reshape(-1)
    if activation == "logits":
        return softmax(v)
    if activation == "softmax":
        v = np.clip(v, 0.0, None)
        total = float(v.sum())
        return (v / total).astype(np.float32) if total > 0 else np.full_like(v, 1.0 / v.size)
    raise ValueError(f"classification activation {activation!r} is unknown; expected 'softmax' or 'logits'")


def entropy(probs: np.ndarray) -> float:
    p = np.asarray(probs, np.float64).reshape(-1)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def normalized_entropy(probs: np.ndarray) -> float:
    n = np.asarray(probs).size
    return entropy(probs) / math.log(n) if n > 1 else 0.0


def top_k(probs: np.ndarray, labels: Sequence[str], k: int, allowed: set[int] | None = None) -> list[dict]:
    """The k most probable classes as schema CLASSIFICATION dicts, highest first (ties: lower id)."""
    p = np.asarray(probs, np.float32).reshape(-1)
    order = np.argsort(-p, kind="stable")
    out = []
    for i in order:
        if allowed is not None and int(i) not in allowed:
            continue
        out.append({"class_id": int(i), "label": str(labels[i]) if i < len(labels) else str(i),
                    "score": round(float(min(1.0, max(0.0, p[i]))), 6)})
        if len(out) >= k:
            break
    return out

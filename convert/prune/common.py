"""What the classifier and detector pruning runs share: the L1 weight for a sparsity target, the interleaved
latency benchmark of both models, and small file helpers."""
from __future__ import annotations

import json
from pathlib import Path

from edge.contract.errors import InputError, OutputError, UsageError


def l1_for(sparsity: float, learning_rates) -> float:
    """The proximal L1 weight that shrinks an unsupported |gamma| by ``sparsity`` over these steps' learning rates."""
    total = float(sum(learning_rates))
    if total <= 0:
        raise UsageError("the sparsity phase has no steps; raise --sparsity-epochs/--sparsity-steps")
    return sparsity / total


def bench_pair(paths: dict[str, dict[str, Path]], threads, runs: int, rounds: int) -> dict[str, dict]:
    """{name: {"float32": path, "int8": path}} -> {name: {"float32_ms": {n: ms}, "int8_ms": {n: ms}, XNNPACK
    partitions and the ops left outside them}}, every file timed in one interleaved run."""
    from edge.modelbench import bench_interleaved
    order = [(name, q) for name in paths for q in ("float32", "int8")]
    results = bench_interleaved([paths[name][q] for name, q in order], threads, runs=runs, rounds=rounds)
    out: dict[str, dict] = {name: {} for name in paths}
    for (name, q), r in zip(order, results):
        out[name][f"{q}_ms"] = dict(r.latency_ms)
        out[name][f"{q}_partitions"] = r.delegation.partitions if r.delegation else None
        out[name][f"{q}_undelegated"] = dict(r.delegation.undelegated) if r.delegation else None
    return out


def write_json(path: Path, rows: list[dict]) -> None:
    try:
        path.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from exc


def check_input(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} {p} does not exist")
    return p

"""Latency and delegation of .tflite models with only a TFLite interpreter (runs on a Pi; no TensorFlow).

Partition count: after ``allocate_tensors`` the interpreter's node list holds the original ops plus
one DELEGATE node per partition the default delegate (XNNPACK) took. Which original ops stayed on the
reference kernels follows from the tensors: a node is *not delegated* when one of its outputs is not
produced by a DELEGATE node yet is consumed by a DELEGATE node, a non-delegated node, or is a model
output. Ops left out of XNNPACK split the graph and cost a round trip through the reference kernels.
"""
from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.runtime import find_runtime


@dataclass
class Delegation:
    partitions: int                       # DELEGATE nodes (XNNPACK partitions)
    ops: Counter                          # op type -> count (original graph)
    undelegated: Counter                  # op type -> count of ops left on the reference kernels

    def describe(self) -> str:
        left = ", ".join(f"{k}x{v}" for k, v in sorted(self.undelegated.items())) or "none"
        return f"{self.partitions} partition(s); not delegated: {left}"


@dataclass
class BenchResult:
    path: str
    size_bytes: int
    io_dtype: str
    latency_ms: dict[int, float] = field(default_factory=dict)   # threads -> median ms
    delegation: Delegation | None = None


def analyze_delegation(interpreter) -> Delegation:
    """Partitions and non-delegated ops of an allocated interpreter (see the module docstring)."""
    ops = interpreter._get_ops_details()
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    original = [o for o in ops if o["op_name"] != "DELEGATE"]
    d_out = {t for o in delegates for t in o["outputs"]}
    d_in = {t for o in delegates for t in o["inputs"]}
    model_outputs = {d["index"] for d in interpreter.get_output_details()}
    consumers: dict[int, list[int]] = {}
    for o in original:
        for t in o["inputs"]:
            consumers.setdefault(int(t), []).append(o["index"])
    left: set[int] = set()
    changed = True
    while changed:
        changed = False
        for o in original:
            if o["index"] in left:
                continue
            for t in o["outputs"]:
                t = int(t)
                if t in d_out:
                    continue
                if not delegates or t in d_in or t in model_outputs or any(c in left for c in consumers.get(t, ())):
                    left.add(o["index"])
                    changed = True
                    break
    return Delegation(len(delegates), Counter(o["op_name"] for o in original),
                      Counter(o["op_name"] for o in original if o["index"] in left))


def _interpreter(model: str | Path, threads: int, runtime):
    interpreter = runtime.module.Interpreter(model_path=str(model), num_threads=int(threads))
    interpreter.allocate_tensors()
    return interpreter


def time_invoke(interpreter, runs: int = 50, warmup: int = 5) -> float:
    """Median wall time of ``invoke`` in ms on a fixed mid-grey input."""
    detail = interpreter.get_input_details()[0]
    dtype = detail["dtype"]
    value = 128 if dtype == np.uint8 else 0
    interpreter.set_tensor(detail["index"], np.full(detail["shape"], value, dtype=dtype))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def bench_model(model: str | Path, threads=(1, 2), runs: int = 50, warmup: int = 5, runtime=None) -> BenchResult:
    runtime = runtime or find_runtime()
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    result = BenchResult(str(path), path.stat().st_size, "")
    for n in threads:
        interpreter = _interpreter(path, n, runtime)
        if result.delegation is None:
            result.delegation = analyze_delegation(interpreter)
            result.io_dtype = np.dtype(interpreter.get_input_details()[0]["dtype"]).name
        result.latency_ms[int(n)] = time_invoke(interpreter, runs, warmup)
        del interpreter
    return result


def bench_interleaved(models: list[str | Path], threads=(1, 2), runs: int = 50, rounds: int = 3,
                      runtime=None) -> list[BenchResult]:
    """Benchmark several models in alternating rounds (A B A B ...) so a busy shared machine slows
    them alike; each latency is the median over all rounds' medians."""
    runtime = runtime or find_runtime()
    results = [bench_model(m, threads, runs=max(5, runs // rounds), runtime=runtime) for m in models]
    samples = {(i, n): [r.latency_ms[n]] for i, r in enumerate(results) for n in threads}
    for _ in range(rounds - 1):
        for i, m in enumerate(models):
            for n in threads:
                interpreter = _interpreter(m, n, runtime)
                samples[(i, n)].append(time_invoke(interpreter, max(5, runs // rounds), 3))
    for (i, n), values in samples.items():
        results[i].latency_ms[n] = statistics.median(values)
    return results


def format_table(results: list[BenchResult], labels: list[str] | None = None, threads=(1, 2)) -> str:
    labels = labels or [Path(r.path).name for r in results]
    head = ["model", "io", "size"] + [f"{n} thr ms" for n in threads] + ["XNNPACK partitions", "not delegated"]
    rows = []
    for label, r in zip(labels, results):
        d = r.delegation
        left = ", ".join(f"{k}x{v}" for k, v in sorted(d.undelegated.items())) if d and d.undelegated else "-"
        rows.append([label, r.io_dtype, f"{r.size_bytes / 1e6:.2f} MB"]
                    + [f"{r.latency_ms.get(n, float('nan')):.2f}" for n in threads]
                    + [str(d.partitions if d else "?"), left])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*["-" * w for w in widths])] + [fmt.format(*row) for row in rows])


def main(argv=None) -> int:
    """python -m edge.modelbench MODEL.tflite [MODEL.tflite ...] [--threads 1,2] (on a Pi, no TensorFlow)."""
    from edge.contract.cli import ArgumentParser, run
    from edge.contract.errors import InputError, UsageError

    def body() -> int:
        parser = ArgumentParser(prog="python -m edge.modelbench", description=main.__doc__)
        parser.add_argument("models", nargs="+", help=".tflite files, measured interleaved")
        parser.add_argument("--threads", default="1,2", help="comma-separated interpreter thread counts")
        parser.add_argument("--runs", type=int, default=60, help="invokes per model, thread count and round")
        parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians reported)")
        args = parser.parse_args(argv)
        try:
            threads = tuple(int(t) for t in args.threads.split(","))
        except ValueError:
            raise UsageError(f"--threads {args.threads!r}: use comma-separated integers, e.g. 1,2") from None
        missing = [m for m in args.models if not Path(m).is_file()]
        if missing:
            raise InputError(f"model file(s) not found: {', '.join(missing)}")
        print(format_table(bench_interleaved(args.models, threads, args.runs, args.rounds), threads=threads))
        return 0
    return run("python -m edge.modelbench", body)


if __name__ == "__main__":
    raise SystemExit(main())

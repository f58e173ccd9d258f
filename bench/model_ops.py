"""``python -m bench.model_ops A.tflite B.tflite``: where a model's time goes, op by op, under XNNPACK.

XNNPACK takes a whole graph as one delegate node, so TFLite's own profiler sees one op. Here every op of each
model is cut out into a one-op model of its own (the same tensors, quantization parameters and weights, read from
the flatbuffer) and timed under XNNPACK like the whole model; the sum over the ops is printed next to the whole
model's invoke, so what the cut leaves out (data staying in cache between ops) shows. The models are timed in
alternating rounds (A's ops, B's ops, A's ops ...), each figure the median over rounds of the median of ``--runs``
invokes, as the thread's CPU time (``time.thread_time``: on a machine shared with other jobs, the stable figure
for one thread; with ``--threads`` > 1 it counts the calling thread only) and as wall time.

Prints per op type (count, CPU ms of each model, B/A) and depthwise convolutions by kernel and stride, where the
int8 vs float32 difference of MixNet sat (convert/models/tiled_depthwise.py). Needs only ai-edge-litert.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class OpModel:
    index: int
    op: str                      # builtin op name
    group: str                   # finer key: depthwise kernel and stride, else the op name
    content: bytes
    cpu_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)


def _op_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def cut_ops(path: str | Path) -> list[OpModel]:
    """Every operator of the first subgraph as a one-op model (constant inputs keep their buffers)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils
    names = _op_names()
    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    out = []
    for index, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"op{code.builtinCode}")
        one = schema.ModelT()
        one.version, one.operatorCodes, one.buffers = model.version, model.operatorCodes, [schema.BufferT()]
        sub = schema.SubGraphT()
        sub.tensors, sub.inputs, remap = [], [], {}

        def tensor(i: int) -> int:
            if i < 0:
                return -1
            if i not in remap:
                t = copy.copy(graph.tensors[i])
                buf = model.buffers[t.buffer] if t.buffer else None
                if buf is not None and buf.data is not None and len(buf.data):
                    one.buffers.append(buf)
                    t.buffer = len(one.buffers) - 1
                else:
                    t.buffer = 0
                    sub.inputs.append(len(sub.tensors))
                remap[i] = len(sub.tensors)
                sub.tensors.append(t)
            return remap[i]

        new = copy.copy(op)
        new.inputs = [tensor(i) for i in op.inputs]
        new.outputs = [tensor(i) for i in op.outputs]
        sub.outputs, sub.operators = list(new.outputs), [new]
        one.subgraphs = [sub]
        group = name
        if name == "DEPTHWISE_CONV_2D":
            kh, kw = graph.tensors[op.inputs[1]].shape[1:3]
            group = f"DEPTHWISE {kh}x{kw}/s{op.builtinOptions.strideH}"
        out.append(OpModel(index, name, group, bytes(flatbuffer_utils.convert_object_to_bytearray(one))))
    return out


def interpreter_for(content: bytes | None, path: str | None, threads: int):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=content, num_threads=threads) if content else Interpreter(model_path=path,
                                                                                              num_threads=threads)
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        if d["dtype"] == np.float32:
            value = rng.normal(0, 1, d["shape"]).astype(np.float32)
        else:
            info = np.iinfo(d["dtype"])
            value = rng.integers(info.min, info.max, d["shape"], endpoint=True).astype(d["dtype"])
        it.set_tensor(d["index"], value)
    it.invoke()
    return it


def time_invokes(it, runs: int) -> tuple[float, float]:
    cpu, wall = [], []
    for _ in range(runs):
        c0, w0 = time.thread_time(), time.perf_counter()
        it.invoke()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu) * 1e3, statistics.median(wall) * 1e3


def profile(paths: list[str], threads: int = 1, rounds: int = 5, runs: int = 10) -> tuple[list, list]:
    """(per model: its OpModels with samples, per model: (whole-model cpu samples, wall samples))."""
    models = [cut_ops(p) for p in paths]
    interpreters = [[interpreter_for(o.content, None, threads) for o in ops] for ops in models]
    whole = [interpreter_for(None, str(p), threads) for p in paths]
    whole_samples = [([], []) for _ in paths]
    for _ in range(rounds):
        for m, ops in enumerate(models):
            for o, it in zip(ops, interpreters[m]):
                c, w = time_invokes(it, runs)
                o.cpu_ms.append(c)
                o.wall_ms.append(w)
            c, w = time_invokes(whole[m], runs)
            whole_samples[m][0].append(c)
            whole_samples[m][1].append(w)
    return models, whole_samples


def _totals(ops: list[OpModel], key: str) -> dict[str, tuple[int, float, float]]:
    out: dict[str, list] = defaultdict(lambda: [0, 0.0, 0.0])
    for o in ops:
        row = out[getattr(o, key)]
        row[0] += 1
        row[1] += statistics.median(o.cpu_ms)
        row[2] += statistics.median(o.wall_ms)
    return {k: tuple(v) for k, v in out.items()}


def report(paths: list[str], models, whole) -> str:
    labels = [chr(ord("A") + i) for i in range(len(paths))]
    lines = []
    for label, path, ops, (cpu, wall) in zip(labels, paths, models, whole):
        total_cpu = sum(statistics.median(o.cpu_ms) for o in ops)
        lines.append(f"{label} = {path}: {len(ops)} ops; sum of the ops {total_cpu:.2f} ms CPU, whole model "
                     f"{statistics.median(cpu):.2f} ms CPU ({statistics.median(wall):.2f} ms wall)")
    for key, title in (("op", "op type"), ("group", "depthwise by kernel/stride, others")):
        tables = [_totals(ops, key) for ops in models]
        keys = sorted(set().union(*tables), key=lambda k: -max(t.get(k, (0, 0.0, 0.0))[1] for t in tables))
        head = f"{title:<34}" + "".join(f"{'n':>5} {label + ' ms CPU':>10}" for label in labels)
        if len(labels) == 2:
            head += f"{'B/A':>8}"
        lines += ["", head]
        for k in keys:
            row = f"{k:<34}" + "".join(f"{t.get(k, (0, 0.0, 0.0))[0]:>5} {t.get(k, (0, 0.0, 0.0))[1]:>10.3f}"
                                       for t in tables)
            if len(labels) == 2 and tables[0].get(k) and tables[1].get(k) and tables[0][k][1] > 0:
                row += f"{tables[1][k][1] / tables[0][k][1]:>7.2f}x"
            lines.append(row)
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.model_ops", description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help=".tflite files (two: the second is compared with the first)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds over the models")
    ap.add_argument("--runs", type=int, default=10, help="invokes per op and round")
    args = ap.parse_args(argv)
    for p in args.models:
        if not Path(p).is_file():
            print(f"error: model file {p} does not exist", file=sys.stderr)
            return 3
    models, whole = profile(args.models, args.threads, args.rounds, args.runs)
    print(report(args.models, models, whole))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Look inside a converted flatbuffer with the interpreter the edge uses: op types, ops that are not
integer, input/output dtypes and shapes, XNNPACK delegation."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from edge.modelbench import Delegation, analyze_delegation
from edge.runtime import find_runtime

FLOAT_DTYPES = (np.float32, np.float16, np.float64)


@dataclass
class ModelInspection:
    ops: Counter
    float_ops: Counter              # op type -> count of ops with a float input or output tensor
    input_dtype: str
    input_shape: tuple
    output_dtypes: dict[str, str]
    output_shapes: dict[str, tuple]
    static_shapes: bool
    delegation: Delegation


def inspect_flatbuffer(flatbuffer: bytes, threads: int = 1) -> ModelInspection:
    runtime = find_runtime()
    interpreter = runtime.module.Interpreter(model_content=flatbuffer, num_threads=threads)
    interpreter.allocate_tensors()
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = [o for o in interpreter._get_ops_details() if o["op_name"] != "DELEGATE"]
    float_ops: Counter = Counter()
    for op in ops:
        idx = [int(t) for t in list(op["inputs"]) + list(op["outputs"]) if int(t) >= 0 and int(t) in tensors]
        if any(tensors[t]["dtype"] in FLOAT_DTYPES for t in idx):
            float_ops[op["op_name"]] += 1
    inp = interpreter.get_input_details()[0]
    outs = interpreter.get_output_details()
    names = {d["index"]: d["name"] for d in outs}
    try:
        for name, detail in interpreter.get_signature_runner().get_output_details().items():
            names[int(detail["index"])] = name
    except Exception:
        pass
    static = all(int(x) > 0 for d in [inp] + outs for x in d.get("shape_signature", d["shape"]))
    return ModelInspection(
        ops=Counter(o["op_name"] for o in ops), float_ops=float_ops,
        input_dtype=np.dtype(inp["dtype"]).name, input_shape=tuple(int(x) for x in inp["shape"]),
        output_dtypes={names[d["index"]]: np.dtype(d["dtype"]).name for d in outs},
        output_shapes={names[d["index"]]: tuple(int(x) for x in d["shape"]) for d in outs},
        static_shapes=static, delegation=analyze_delegation(interpreter))

"""Reading what a converted .tflite holds, independently of the exporter that wrote it (tests only)."""
from __future__ import annotations

import numpy as np

DEPTHWISE_CONV_2D = 4          # tflite BuiltinOperator


def depthwise_taps(path) -> list[int]:
    """Kernel height x width of every DEPTHWISE_CONV_2D in the model's first subgraph, in graph order."""
    from ai_edge_litert.tools import flatbuffer_utils
    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    return [int(np.prod(graph.tensors[op.inputs[1]].shape[1:3])) for op in graph.operators
            if codes[op.opcodeIndex] == DEPTHWISE_CONV_2D]

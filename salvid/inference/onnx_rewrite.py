"""Exact rewrites of an exported ONNX graph, before it is cached or written: the same function, less work.

``torch.onnx.export`` writes EfficientNet's TensorFlow "same" padding
(:class:`salvid.models.efficientnet_lite.SameConv2d`) as a ``Pad`` node before each strided convolution, its
amounts computed through a chain of shape and cast nodes. ONNX Runtime runs such a ``Pad`` as a separate pass over
the features, with layout conversions around it. :func:`simplified` first applies ONNX Runtime's basic rewrites,
which are provider-independent and leave standard ONNX (constants folded, so each ``Pad``'s amounts become a
constant; BatchNorm folded into its convolution), then moves each zero ``Pad`` into the ``pads`` of the convolution
it feeds. The maps are unchanged (to the last bit for the default model); its encoder ran about 15% faster in ONNX
Runtime on a 2-core AMD EPYC with AVX2 only.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np


def simplified(data: bytes) -> bytes:
    """``data`` (a serialised ONNX model) with ONNX Runtime's basic rewrites and zero pads folded into the
    convolutions after them; unchanged when ONNX Runtime is not installed."""
    import onnx

    try:
        import onnxruntime as ort
    except ImportError:
        return data
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "basic.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(path)
        options.log_severity_level = 3  # its notes on initializers it removed are no news to a user
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        model = onnx.load(str(path))
    fold_pads_into_convs(model)
    return model.SerializeToString()


def fold_pads_into_convs(model) -> int:
    """Remove each ``Pad`` (constant mode, value 0, spatial amounts >= 0 given as an initializer) whose only
    consumer is a ``Conv`` without ``auto_pad``, adding its amounts to that convolution's ``pads``. Returns how
    many were folded."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    uses = Counter(name for node in graph.node for name in node.input)
    uses.update(o.name for o in graph.output)  # a graph output is one more use
    foldable = {}
    for node in graph.node:
        if (node.op_type != "Pad" or len(node.input) < 2 or uses[node.output[0]] != 1
                or (len(node.input) > 3 and node.input[3])):  # amounts for chosen axes only: left alone
            continue
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "constant")
        amounts = constants.get(node.input[1])
        value = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(())
        if (mode != "constant" or amounts is None or amounts.shape != (8,) or value is None or np.any(value != 0)
                or np.any(amounts[[0, 1, 4, 5]] != 0) or np.any(amounts < 0)):
            continue
        foldable[node.output[0]] = node
    folded = []
    for node in graph.node:
        pad = foldable.get(node.input[0]) if node.op_type == "Conv" and node.input else None
        if pad is None or any(a.name == "auto_pad" and a.s not in (b"", b"NOTSET") for a in node.attribute):
            continue
        amounts = constants[pad.input[1]]  # begin N, C, H, W, end N, C, H, W
        old = next((list(a.ints) for a in node.attribute if a.name == "pads"), [0, 0, 0, 0])
        new = [old[0] + int(amounts[2]), old[1] + int(amounts[3]), old[2] + int(amounts[6]),
               old[3] + int(amounts[7])]
        kept = [a for a in node.attribute if a.name != "pads"]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("pads", new)])
        node.input[0] = pad.input[0]
        folded.append(pad)
    for pad in folded:
        graph.node.remove(pad)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    return len(folded)

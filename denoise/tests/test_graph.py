"""The streamable graph: equal to the archive's full-sequence graphs, cached and rebuilt."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from denoise import builder, graph
from denoise.exceptions import EngineError


def _parts() -> dict[str, bytes]:
    with tarfile.open(graph.archive_path(), "r:gz") as tar:
        return {
            Path(m.name).name[:-5]: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.name.endswith(".onnx")
        }


def test_streaming_a_batch_equals_each_sequence_through_the_original_graphs(tmp_path: Path):
    built = graph.load(cache_dir=tmp_path)
    session = ort.InferenceSession(built.model, providers=["CPUExecutionProvider"])
    parts = {k: ort.InferenceSession(v, providers=["CPUExecutionProvider"]) for k, v in _parts().items()}
    rng = np.random.default_rng(0)
    batch, frames = 3, 12
    erb = (0.3 * rng.standard_normal((batch, 1, frames, 32))).astype(np.float32)
    spec = (0.3 * rng.standard_normal((batch, 2, frames, 96))).astype(np.float32)
    states = {
        s.name: np.zeros([batch if i == s.batch_axis else d for i, d in enumerate(s.shape)], np.float32)
        for s in built.states
    }
    names = ["lsnr", "m", "coefs", *(f"{s.name}.next" for s in built.states)]
    streamed = []
    for t in range(frames):
        result = dict(
            zip(
                names,
                session.run(
                    names, {"feat_erb": erb[:, :, t : t + 1], "feat_spec": spec[:, :, t : t + 1], **states}
                ),
                strict=True,
            )
        )
        states = {s.name: result[f"{s.name}.next"] for s in built.states}
        streamed.append(result)
    for b in range(batch):
        enc_names = [o.name for o in parts["enc"].get_outputs()]
        enc = dict(
            zip(
                enc_names,
                parts["enc"].run(None, {"feat_erb": erb[b : b + 1], "feat_spec": spec[b : b + 1]}),
                strict=True,
            )
        )
        mask = parts["erb_dec"].run(["m"], {k: enc[k] for k in ("emb", "e3", "e2", "e1", "e0")})[0]
        coefs = parts["df_dec"].run(["coefs"], {"emb": enc["emb"], "c0": enc["c0"]})[0]
        assert np.allclose(np.concatenate([r["lsnr"][b] for r in streamed]), enc["lsnr"][0], atol=1e-5)
        assert np.allclose(np.concatenate([r["m"][b] for r in streamed], axis=1), mask[0], atol=1e-5)
        assert np.allclose(np.concatenate([r["coefs"][b] for r in streamed]), coefs[0], atol=1e-5)
    assert len(built.states) == 8  # five GRUs, three padded convolutions


def _cache_file(cache: Path) -> Path:
    (path,) = cache.iterdir()
    return path


def test_an_intact_cache_is_used_without_rebuilding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    first = graph.load(cache_dir=tmp_path)
    monkeypatch.setattr(builder, "build", lambda _: pytest.fail("rebuilt an intact cache"))
    assert graph.load(cache_dir=tmp_path).model == first.model


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_a_corrupt_cache_is_rebuilt(tmp_path: Path, damage: str):
    good = graph.load(cache_dir=tmp_path).model
    path = _cache_file(tmp_path)
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0xFF
    elif damage == "truncate":
        del blob[len(blob) // 2 :]
    else:
        blob.clear()
    path.write_bytes(bytes(blob))
    assert graph.load(cache_dir=tmp_path).model == good
    assert graph._read_checked(path) is not None  # and the file is whole again


def test_the_cache_is_keyed_by_the_archive(tmp_path: Path):
    graph.load(cache_dir=tmp_path)
    name = _cache_file(tmp_path).name
    other = tmp_path / "other.tar.gz"
    other.write_bytes(graph.archive_path().read_bytes() + b"\0" * 512)  # same content, new hash
    graph.load(other, cache_dir=tmp_path)
    assert {p.name for p in tmp_path.iterdir() if p.suffix == ".onnx"} - {name}


def test_an_archive_without_the_graphs_is_refused(tmp_path: Path):
    bogus = tmp_path / "bogus.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("config.ini")
        tar.addfile(info, io.BytesIO(b""))
    bogus.write_bytes(buffer.getvalue())
    with pytest.raises(EngineError):
        graph.load(bogus, cache_dir=tmp_path / "cache")

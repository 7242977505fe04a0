"""The committed stubs must be exactly what `make proto` generates from the .proto files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("generate", ROOT / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stubs_match_protos(tmp_path):
    gen = _generator()
    gen.generate(tmp_path)
    produced = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert produced, "protoc produced nothing"
    stale = []
    for rel in produced:
        committed = ROOT / "proto" / rel
        if not committed.exists() or committed.read_bytes() != (tmp_path / rel).read_bytes():
            stale.append(str(rel))
    assert not stale, f"stubs are stale, run `make proto`: {stale}"
    # and every .proto has its stubs
    for proto in gen.proto_files():
        stem = proto.stem
        assert (proto.parent / f"{stem}_pb2.py").exists(), f"{stem}_pb2.py missing"

"""Tests of entropic_ae._io: atomic writes and digests."""

import hashlib
import threading

import pytest

from entropic_ae._io import atomic_write, canonical_json, digest, file_sha256, source_digest


def test_atomic_write_writes_text_and_bytes_and_leaves_no_temporary_files(tmp_path):
    path = atomic_write(tmp_path / "a" / "b.txt", "héllo")
    assert path.read_text(encoding="utf-8") == "héllo"
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.txt"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_concurrent_writers_never_leave_a_mixed_file(tmp_path):
    path = tmp_path / "f"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=atomic_write, args=(path, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_bytes() in payloads


def test_file_sha256_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 10_000
    (tmp_path / "x").write_bytes(data)
    assert file_sha256(tmp_path / "x") == hashlib.sha256(data).hexdigest()


def test_digest_is_canonical():
    assert digest({"a": 1, "b": [2.0, "x"]}) == digest({"b": [2, "x"], "a": 1.0})
    assert digest({"a": 1}) != digest({"a": 2})
    assert digest((1, 2)) == digest([1, 2])
    assert len(digest("x", length=12)) == 12
    assert canonical_json({"b": 1, "a": float("nan")}) == '{"a":"nan","b":1}'


def test_digest_refuses_what_it_cannot_write():
    with pytest.raises(TypeError, match="cannot digest a set"):
        digest({1, 2})
    with pytest.raises(ValueError, match="length"):
        digest(1, length=0)


def test_source_digest_sees_code_but_not_comments_or_docstrings(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text('"""Doc."""\nx = 1\n')
    (pkg / "sub" / "b.py").write_text("def f():\n    'doc'\n    return 2\n")
    base = source_digest(pkg)
    (pkg / "a.py").write_text('"""Another doc."""\n# a comment\nx = (1)\n')
    assert source_digest(pkg) == base
    (pkg / "a.py").write_text("x = 2\n")
    changed = source_digest(pkg)
    assert changed != base
    (pkg / "sub" / "b.py").write_text("def f():\n    return 3\n")
    assert source_digest(pkg) != changed
    assert source_digest(pkg, exclude=["sub/"]) == source_digest(pkg, exclude=["sub/b.py"])
    with pytest.raises(ValueError, match="directory"):
        source_digest(tmp_path / "missing")

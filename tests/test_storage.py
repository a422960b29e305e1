"""Atomic writes: whole or nothing, in one home."""

import numpy as np
import pytest

from searchkit.storage import atomic_folder, save_arrays_atomic, write_atomic, write_text_atomic


def test_write_atomic_replaces_whole_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "f.bin"
    write_atomic(p, b"old")
    write_text_atomic(p, "new é")
    assert p.read_text(encoding="utf-8") == "new é"
    assert sorted(x.name for x in p.parent.iterdir()) == ["f.bin"]


def test_save_arrays_atomic_round_trips(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(np.load(save_arrays_atomic(tmp_path / "a.npy", a)), a)
    z = np.load(save_arrays_atomic(tmp_path / "b.npz", x=a, y=a[0]))
    np.testing.assert_array_equal(z["y"], a[0])


def test_atomic_folder_appears_only_on_success(tmp_path):
    final = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_folder(final) as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("interrupted")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with atomic_folder(final) as tmp:
        (tmp / "whole.bin").write_bytes(b"x")
    assert [p.name for p in final.iterdir()] == ["whole.bin"]
    with pytest.raises(FileExistsError):
        with atomic_folder(final):
            pass
    with atomic_folder(final, keep_existing=True) as tmp:  # someone else finished first: theirs is kept
        (tmp / "other.bin").write_bytes(b"y")
    assert [p.name for p in final.iterdir()] == ["whole.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]

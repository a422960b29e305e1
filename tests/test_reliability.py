"""Faults injected on purpose: kills during index writes, damaged index files.

Trial counts are reduced for CI; ``SEARCHKIT_FAULT_TRIALS=50`` runs the full count.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_beir

from searchkit.errors import SearchIndexError
from searchkit.index.vector import VectorIndex

TRIALS = int(os.environ.get("SEARCHKIT_FAULT_TRIALS", "0")) or None
ROOT = Path(__file__).resolve().parents[1]


def _ids_in(folder: Path) -> set[str]:
    index = VectorIndex.load(folder)  # verifies both checksums and the manifest counts
    ids = [d for d in index.ids if d is not None]
    assert len(ids) == len(set(ids)) == len(index), "duplicated or missing ids"
    return set(ids)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}


def test_killed_build_leaves_the_old_or_the_new_index(tmp_path):
    """SIGKILL ``python -m searchkit build`` at random moments over an existing index."""
    old_corpus, new_corpus = tiny_beir(tmp_path / "old", "old-"), tiny_beir(tmp_path / "new", "new-")
    out = tmp_path / "index"
    cmd = [sys.executable, "-m", "searchkit", "build", "--out", str(out)]
    subprocess.run([*cmd, "--corpus", f"beir:{old_corpus}"], check=True, env=_env(), capture_output=True, timeout=600)
    old_ids = _ids_in(out)
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--corpus", f"beir:{new_corpus}"], check=True, env=_env(), capture_output=True, timeout=600)
    full = time.perf_counter() - t0
    new_ids = _ids_in(out)
    rng = random.Random(0)
    outcomes = {"unchanged": 0, "replaced": 0}
    for trial in range(TRIALS or 4):
        corpus = old_corpus if trial % 2 else new_corpus  # alternate, so each kill lands on a real change
        before = _ids_in(out)
        proc = subprocess.Popen([*cmd, "--corpus", f"beir:{corpus}"], env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        # Most of a build is loading the model; aim most kills at its last part, where files are written.
        time.sleep(rng.uniform(0.6, 1.05) * full if trial % 4 else rng.uniform(0, full))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = _ids_in(out)
        target = old_ids if corpus == old_corpus else new_ids
        assert after in (before, target), f"trial {trial}: torn index, or ids of neither the old nor the new build"
        if proc.returncode == 0:  # the build finished before the kill: its index must be the one on disk
            assert after == target, f"trial {trial}: a finished build left the previous index"
        outcomes["unchanged" if after == before else "replaced"] += 1
    print(f"killed builds: {outcomes}")


_SAVE_LOOP = textwrap.dedent(
    """
    import sys, numpy as np
    from searchkit.index.vector import VectorIndex
    out = sys.argv[1]
    rng = np.random.default_rng(0)
    for i in range(10_000):
        version = i % 2
        n = 3000 + version * 500
        x = rng.normal(size=(n, 64)).astype("float32")
        ix = VectorIndex(64, "Flat", model_id="m")
        ix.add([f"v{version}-{j}" for j in range(n)], x)
        ix.save(out)
        print(i, flush=True)
    """
)


def test_killed_saves_never_tear_the_index(tmp_path):
    """SIGKILL a process that saves index after index into one folder; every kill leaves a whole index."""
    out = tmp_path / "index"
    expected = [{f"v{v}-{j}" for j in range(3000 + v * 500)} for v in (0, 1)]
    rng = random.Random(1)
    for trial in range(TRIALS or 8):
        proc = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(out)], env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        proc.stdout.readline()  # at least one save finished
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _ids_in(out) in expected, f"trial {trial}: torn index"
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 3, f"temporary files pile up: {leftovers}"


@pytest.fixture
def saved_index(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    ix = VectorIndex(16, "Flat", model_id="m")
    ix.add([f"d{i}" for i in range(50)], x)
    ix.save(tmp_path)
    return tmp_path, json.loads((tmp_path / "manifest.json").read_text())


def test_truncated_index_file_is_refused(saved_index):
    folder, m = saved_index
    path = folder / m["index_file"]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(SearchIndexError, match="fails its checksum .*: rebuild"):
        VectorIndex.load(folder)


def test_bit_flip_is_refused(saved_index):
    folder, m = saved_index
    path = folder / m["index_file"]
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x10
    path.write_bytes(bytes(blob))
    with pytest.raises(SearchIndexError, match="fails its checksum"):
        VectorIndex.load(folder)


def test_foreign_files_are_refused(saved_index):
    folder, m = saved_index
    (folder / "manifest.json").write_text('{"hello": "world"}')
    with pytest.raises(SearchIndexError, match="lacks .*: not a searchkit index manifest, rebuild the index"):
        VectorIndex.load(folder)
    (folder / "manifest.json").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(SearchIndexError, match="is not valid JSON"):
        VectorIndex.load(folder)


def test_a_manifest_naming_another_folder_is_refused(saved_index):
    folder, m = saved_index
    m["index_file"] = "../../etc/passwd"
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SearchIndexError, match="index_file is \"../../etc/passwd\" but must be a file name inside the index folder"):
        VectorIndex.load(folder)


@pytest.fixture(scope="module")
def built_index(tmp_path_factory):
    """A tiny corpus and an index built for it by the command line, once for the damage tests."""
    tmp = tmp_path_factory.mktemp("built")
    corpus = tiny_beir(tmp / "c", "d")
    out = tmp / "index"
    subprocess.run([sys.executable, "-m", "searchkit", "build", "--corpus", f"beir:{corpus}", "--out", str(out)],
                   check=True, env=_env(), capture_output=True, timeout=600)  # fmt: skip
    return corpus, out


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign", "missing"])
def test_serve_refuses_a_damaged_index_with_one_line(tmp_path, built_index, damage):
    import shutil

    corpus, built = built_index
    out = tmp_path / "index"
    shutil.copytree(built, out)
    m = json.loads((out / "manifest.json").read_text())
    index_file = out / m["index_file"]
    if damage == "truncate":
        index_file.write_bytes(index_file.read_bytes()[:-10])
    elif damage == "flip":
        blob = bytearray(index_file.read_bytes())
        blob[-5] ^= 0xFF
        index_file.write_bytes(bytes(blob))
    elif damage == "foreign":
        (out / "manifest.json").write_text("not json at all")
    else:
        index_file.unlink()
    r = subprocess.run(
        [sys.executable, "-m", "searchkit", "serve", "--corpus", f"beir:{corpus}", "--index", str(out), "--port", "0"],
        env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "rebuild" in lines[0]

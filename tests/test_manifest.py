"""Damaged index folders: a bad manifest field, a bad ids file, a link out of the folder, a special file.

Each case is a command (``python -m searchkit serve --index DIR``) and its answer: exit status 2 and one line
naming the field or file, its value and the fix. Nothing is half-loaded: the schema is checked before the model,
the corpus or any data file is read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from searchkit.cli import main
from searchkit.errors import SearchIndexError
from searchkit.index.manifest import ManifestModel, read_manifest, sha256
from searchkit.index.vector import VectorIndex


@pytest.fixture(scope="module")
def saved(tmp_path_factory, embedder):
    """A small valid index folder for the default model (three made-up documents)."""
    folder = tmp_path_factory.mktemp("valid") / "index"
    x = np.random.default_rng(0).normal(size=(3, embedder.dim)).astype(np.float32)
    VectorIndex.build(["doc-a", "doc-b", "doc-c"], x, model_id=embedder.model_id).save(folder)
    return folder


@pytest.fixture
def copy(saved, tmp_path):
    """A fresh copy of the valid index folder, to damage."""
    return Path(shutil.copytree(saved, tmp_path / "index"))


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _edit(folder: Path, **changes) -> None:
    m = _manifest(folder)
    m.update(changes)
    (folder / "manifest.json").write_text(json.dumps(m))


def _replace_data(folder: Path, kind: str, blob: bytes) -> None:
    """Replace the ids or index file with ``blob`` and give the manifest its true checksum."""
    m = _manifest(folder)
    (folder / m[f"{kind}_file"]).write_bytes(blob)
    _edit(folder, **{f"{kind}_sha256": sha256(blob)})


def serve_fails(folder: Path, capsys, monkeypatch) -> str:
    """Run ``serve --index folder`` in-process; assert exit status 2 and one line on stderr; return the line."""
    import uvicorn

    def never(*a, **kw):
        raise AssertionError("the server started on a bad index")

    monkeypatch.setattr(uvicorn, "run", never)
    assert main(["serve", "--index", str(folder)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and len(lines[0]) < 400, err
    return lines[0]


# -- the manifest's schema ---------------------------------------------------------------------------

SCHEMA_CASES = [
    ({"index_sha256": 123}, 'index_sha256 is 123 but must be 64 lowercase hex digits (a sha256)'),
    ({"ids_sha256": None}, "ids_sha256 is null but must be 64 lowercase hex digits (a sha256)"),
    ({"format": True}, "format is true but must be 1 (the format this searchkit reads)"),
    ({"format": 2}, "format is 2 but must be 1 (the format this searchkit reads)"),
    ({"metric": 5}, "metric is 5 but must be 'ip' or 'l2'"),
    ({"factory": ["Flat"]}, 'factory is ["Flat"] but must be a faiss factory string such as \'Flat\''),
    ({"factory": ""}, 'factory is "" but must be a faiss factory string'),
    ({"dim": "384"}, 'dim is "384" but must be the vector dimension, a whole number of at least 1 (e.g. 384)'),
    ({"dim": 0}, "dim is 0 but must be the vector dimension"),
    ({"count": -1}, "count is -1 but must be the number of vectors, a whole number of at least 0"),
    ({"count": 3.0}, "count is 3.0 but must be the number of vectors"),
    ({"model": 7}, "model is 7 but must be the embedding model's name (a string) or null"),
    ({"nprobe": "8"}, 'nprobe is "8" but must be null or a whole number of at least 1'),
    ({"index_file": "../../etc/passwd"}, 'index_file is "../../etc/passwd" but must be a file name inside the index folder'),
    ({"ids_file": "/etc/passwd"}, 'ids_file is "/etc/passwd" but must be a file name inside the index folder'),
    ({"shards": 4}, "has an unknown field 'shards': not a manifest this searchkit wrote"),
    ({"factory": "F" * 100_000}, 'factory is "FFFFF'),
]


@pytest.mark.parametrize("change, expected", SCHEMA_CASES, ids=[str(c)[:40] for c, _ in SCHEMA_CASES])
def test_a_bad_manifest_field_is_one_line_and_exit_2(copy, capsys, monkeypatch, change, expected):
    _edit(copy, **change)
    line = serve_fails(copy, capsys, monkeypatch)
    assert expected in line, line
    assert line.startswith(f"error: {copy / 'manifest.json'}") and line.endswith(
        "rebuild the index with python -m searchkit build"
    ), line


def test_two_bad_fields_name_the_first_and_count_the_rest(copy, capsys, monkeypatch):
    _edit(copy, dim="384", metric=5, count=None)
    line = serve_fails(copy, capsys, monkeypatch)
    assert 'dim is "384" but must be the vector dimension, a whole number of at least 1 (e.g. 384) (and 2 more)' in line


def test_missing_fields_are_listed(copy, capsys, monkeypatch):
    m = _manifest(copy)
    del m["ids_sha256"], m["dim"]
    (copy / "manifest.json").write_text(json.dumps(m))
    line = serve_fails(copy, capsys, monkeypatch)
    assert "manifest.json lacks dim, ids_sha256: not a searchkit index manifest" in line, line


@pytest.mark.parametrize("text, expected", [
    ("[1, 2, 3]", "holds list, not a JSON object"),
    ('"manifest"', "holds str, not a JSON object"),
    ("{nope", "is not valid JSON"),
])  # fmt: skip
def test_a_manifest_that_is_not_an_object(copy, capsys, monkeypatch, text, expected):
    (copy / "manifest.json").write_text(text)
    assert expected in serve_fails(copy, capsys, monkeypatch)


def test_the_schema_is_checked_before_the_model_loads(copy):
    """The real command, in its own process: exit 2 and exactly one line, no traceback."""
    _edit(copy, dim="384")
    r = subprocess.run([sys.executable, "-m", "searchkit", "serve", "--index", str(copy)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f'error: {copy / "manifest.json"}: dim is "384" but must be the vector dimension, a whole number of at '
        "least 1 (e.g. 384): rebuild the index with python -m searchkit build"
    ]


def test_saving_refuses_what_loading_would_refuse(tmp_path, unit_vectors):
    index = VectorIndex(8, "Flat", model_id="m")
    index.add(["a"], unit_vectors(1, 8))
    index.model_id = 42  # type: ignore[assignment]
    with pytest.raises(ValueError, match="model"):
        index.save(tmp_path / "bad")
    assert not (tmp_path / "bad" / "manifest.json").exists()


def test_later_manifests_reuse_the_schema_code(tmp_path):
    """A new manifest kind is a subclass: the same strict types, the same one-line errors."""

    class ShardManifest(ManifestModel):
        kind = "shard"
        shards: int

    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "shards": "4"}))
    with pytest.raises(SearchIndexError, match=r'manifest.json: shards is "4" but must be .*: rebuild the index'):
        read_manifest(tmp_path, ShardManifest)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1}))
    with pytest.raises(SearchIndexError, match="lacks shards: not a searchkit shard manifest"):
        read_manifest(tmp_path, ShardManifest)


# -- the ids file ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ids, expected", [
    ([[0], [1], [2]], "item [0] is [0] but must be a JSON list of document ids (strings, null for deleted ones)"),
    ({"doc-a": 0}, "item the file is {\"doc-a\": 0} but must be a JSON list of document ids"),
    (["doc-a", 7, "doc-c"], "item [1] is 7 but must be a JSON list of document ids"),
    (["doc-a", "doc-a", "doc-c"], 'document id "doc-a" appears at positions 0 and 1; ids must be unique'),
    (["doc-a", "doc-b"], "has vector label 2, which names no id in the ids file"),
    (["doc-a", None, "doc-c"], "has vector label 1, which names no id in the ids file"),
])  # fmt: skip
def test_a_bad_ids_file_with_a_valid_checksum(copy, capsys, monkeypatch, ids, expected):
    _replace_data(copy, "ids", json.dumps(ids).encode())
    line = serve_fails(copy, capsys, monkeypatch)
    assert expected in line, line
    assert line.endswith("rebuild the index with python -m searchkit build"), line


def test_ids_that_are_not_json(copy, capsys, monkeypatch):
    _replace_data(copy, "ids", b"\xff\xfe not json")
    assert "is not valid JSON: it must be a JSON list of document ids" in serve_fails(copy, capsys, monkeypatch)


def test_an_index_file_faiss_cannot_read_is_not_echoed(copy, capsys, monkeypatch):
    _replace_data(copy, "index", b"SECRET-FIRST-BYTES" * 10)
    line = serve_fails(copy, capsys, monkeypatch)
    assert "is not an index faiss" in line and "can read: rebuild the index" in line and "SECRET" not in line, line


# -- links and special files -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["index", "ids"])
def test_a_link_to_a_valid_file_outside_the_folder_is_refused(copy, tmp_path, capsys, monkeypatch, kind):
    name = _manifest(copy)[f"{kind}_file"]
    outside = tmp_path / f"outside-{name}"
    shutil.move(copy / name, outside)  # same bytes: the checksum would match
    (copy / name).symlink_to(outside)
    line = serve_fails(copy, capsys, monkeypatch)
    assert f"{copy / name} is a link to {outside}, outside the index folder: copy the file into {copy}" in line, line


def test_a_link_to_dev_zero_is_refused_without_reading_it(copy, capsys, monkeypatch):
    name = _manifest(copy)["index_file"]
    (copy / name).unlink()
    (copy / name).symlink_to("/dev/zero")
    assert "is a link to /dev/zero, outside the index folder" in serve_fails(copy, capsys, monkeypatch)


def test_a_manifest_linked_from_outside_is_refused(copy, tmp_path, capsys, monkeypatch):
    outside = tmp_path / "manifest.json"
    shutil.move(copy / "manifest.json", outside)
    (copy / "manifest.json").symlink_to(outside)
    assert f"is a link to {outside}, outside the index folder" in serve_fails(copy, capsys, monkeypatch)


@pytest.mark.parametrize("special, expected", [("fifo", "is a device, pipe or socket"), ("dir", "is a folder")])
def test_special_files_in_the_folder_are_refused(copy, capsys, monkeypatch, special, expected):
    name = _manifest(copy)["ids_file"]
    (copy / name).unlink()
    os.mkfifo(copy / name) if special == "fifo" else (copy / name).mkdir()
    line = serve_fails(copy, capsys, monkeypatch)
    assert f"{copy / name} {expected}, not a regular file: rebuild the index" in line, line


def test_a_dangling_link_is_missing(copy, capsys, monkeypatch):
    name = _manifest(copy)["ids_file"]
    (copy / name).unlink()
    (copy / name).symlink_to(copy / "gone.json")
    assert f"{copy / name} is missing: the index is incomplete" in serve_fails(copy, capsys, monkeypatch)


def test_a_link_inside_the_folder_is_fine(copy):
    name = _manifest(copy)["ids_file"]
    (copy / name).rename(copy / "real-ids.json")
    (copy / name).symlink_to("real-ids.json")
    index = VectorIndex.load(copy)
    assert index.doc_ids() == ["doc-a", "doc-b", "doc-c"]


def test_a_valid_folder_still_loads(saved, embedder):
    index = VectorIndex.load(saved, model_id=embedder.model_id, dim=embedder.dim)
    assert len(index) == 3 and read_manifest(saved).count == 3

"""Your own folder end to end: passages behind the engine, incremental rebuilds, and the build command's budget flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchkit.cli import main
from searchkit.corpus.datasets import Corpus
from searchkit.corpus.loaders import load_dataset
from searchkit.engine import SearchEngine
from searchkit.errors import InputError
from searchkit.index.incremental import build_corpus_index
from searchkit.index.manifest import read_manifest
from searchkit.index.vector import VectorIndex

FILLER = [
    "Bread dough rises when yeast ferments the sugars in the flour and releases gas.",
    "A sourdough starter is a culture of wild yeast and bacteria kept alive with flour and water.",
    "Kneading develops gluten, which traps the gas and gives the loaf its structure.",
    "Bakers score the top of the loaf so that it opens evenly in the oven.",
]


def _long_doc(hidden: str, paragraphs: int = 10) -> str:
    parts = [" ".join(FILLER * 2) for _ in range(paragraphs)]
    parts[-2] = hidden  # far beyond the encoder's first 256 word pieces
    return "# Baking notes\n\n" + "\n\n".join(parts)


def _notes(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "baking.md").write_text(_long_doc("Lava from the volcano flowed down the mountain and cooled into black basalt rock."))
    (root / "trains.txt").write_text("Timetables\n\nThe night train to Vienna leaves at ten and arrives at dawn.")
    (root / "plants.txt").write_text("Houseplants\n\nWater ferns twice a week and keep them out of direct sun.")
    return root


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.embedded = inner, 0
        self.model, self.model_id, self.dim, self.backend = inner.model, inner.model_id, inner.dim, inner.backend

    def encode(self, texts, **kwargs):
        self.embedded += len(texts)
        return self.inner.encode(texts, **kwargs)

    def encode_cached(self, texts, **kwargs):
        self.embedded += len(texts)
        return self.inner.encode_cached(texts, **kwargs)


def test_engine_over_a_folder_finds_a_passage_deep_in_a_long_document(tmp_path, embedder):
    corpus = load_dataset(str(_notes(tmp_path / "notes"))).corpus
    engine = SearchEngine.build(corpus, embedder, progress=False)
    assert engine.passages is not None and len(engine.index) > len(corpus)
    hits = engine.search("lava flowing from a volcano", k=10)
    assert [h.id for h in hits][0] == "baking.md"
    assert len({h.id for h in hits}) == len(hits) == 3  # every document once, however many passages matched
    top = hits[0]
    assert "volcano" in top.text and top.text != corpus.texts[corpus.row("baking.md")]  # the best passage
    assert top.title == "Baking notes" and set(top.to_dict()) == {"id", "score", "title", "text"}
    short = next(h for h in hits if h.id == "trains.txt")
    assert short.text == corpus.texts[corpus.row("trains.txt")]  # a document that fits shows whole
    hybrid = engine.search("volcano basalt", k=2, mode="hybrid")
    assert hybrid[0].id == "baking.md" and "volcano" in hybrid[0].text and len({h.id for h in hybrid}) == 2
    # without passages the same document is read only up to the window and the hidden paragraph is lost
    flat = SearchEngine.build(Corpus(corpus.ids, corpus.titles, corpus.texts), embedder, progress=False)
    assert flat.passages is None and flat.search("lava flowing from a volcano", k=1)[0].score < top.score


def test_rebuilding_a_folder_embeds_only_what_changed(tmp_path, embedder):
    root, out = _notes(tmp_path / "notes"), tmp_path / "index"
    spy = CountingEmbedder(embedder)
    first = build_corpus_index(load_dataset(str(root)).corpus, out, spy)
    assert first.fresh and first.embedded == 3 and first.passages > 3
    n_first = spy.embedded
    again = build_corpus_index(load_dataset(str(root)).corpus, out, spy)
    assert (again.embedded, again.kept, again.dropped, spy.embedded) == (0, 3, 0, n_first)
    (root / "plants.txt").write_text("Houseplants\n\nCacti need little water and a lot of light.")
    (root / "trains.txt").unlink()
    (root / "sea.txt").write_text("Tides\n\nThe moon pulls the sea into two bulges, so most coasts see two tides a day.")
    third = build_corpus_index(load_dataset(str(root)).corpus, out, spy)
    assert (third.embedded, third.kept, third.dropped, third.fresh) == (2, 1, 1, False)
    assert spy.embedded == n_first + 2  # plants.txt and sea.txt: one passage each
    index = VectorIndex.load(out)
    assert "trains.txt" not in index and "sea.txt" in index and "baking.md#1" in index
    assert set(index.sources) == {"baking.md", "plants.txt", "sea.txt"}
    assert sorted(p.name.split("-")[0] for p in out.iterdir()) == ["ids", "index", "manifest.json", "sources"]
    # the saved index answers like a fresh build of the same folder
    fresh = build_corpus_index(load_dataset(str(root)).corpus, tmp_path / "fresh", embedder)
    assert fresh.passages == len(index)
    xq = embedder.encode(["cactus watering"])
    assert index.search(xq, 1).ids == VectorIndex.load(tmp_path / "fresh").search(xq, 1).ids == [["plants.txt"]]


def test_build_command_with_a_budget_and_its_errors(tmp_path, capsys):
    root, out = _notes(tmp_path / "notes"), tmp_path / "index"
    assert main(["build", "--corpus", str(root), "--out", str(out), "--factory", "Flat", "--max-memory", "1GB"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --factory Flat and --max-memory both given: choose one, a factory string or a budget for the chooser to meet"
    )
    assert main(["build", "--corpus", str(root), "--out", str(out), "--min-recall", "0.9"]) == 2
    assert "needs a memory budget too: add --max-memory" in capsys.readouterr().err
    assert main(["build", "--corpus", str(root), "--out", str(out), "--max-memory", "lots"]) == 2
    assert "--max-memory 'lots' is not a size: write it like 512MB" in capsys.readouterr().err
    assert not out.exists()  # nothing half-built
    assert main(["build", "--corpus", str(root), "--out", str(out), "--max-memory", "1MB", "--min-recall", "0.9"]) == 0
    printed = capsys.readouterr().out
    assert "verdict" in printed and "chosen:" in printed and "saved" in printed
    assert read_manifest(out).count > 3


def test_search_command_reads_a_csv_with_another_text_column(tmp_path, capsys):
    p = tmp_path / "export.csv"
    p.write_text('id,body\nn1,"The night train to Vienna leaves at ten."\nn2,"Ferns like shade and water."\n')
    assert main(["search", "--corpus", str(p), "--text-column", "body", "--json", "-k", "1", "train to Vienna"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["results"][0]["id"] == "n1"
    assert main(["search", "--corpus", str(p), "x"]) == 2
    assert "no 'text' column in the header (columns: id, body): name the text column with --text-column" in capsys.readouterr().err


def test_a_serve_engine_from_a_saved_folder_index_maps_passages(tmp_path, embedder):
    from searchkit.startup import load_engine

    root, out = _notes(tmp_path / "notes"), tmp_path / "index"
    build_corpus_index(load_dataset(str(root)).corpus, out, embedder)
    engine = load_engine(str(root), index_dir=str(out), backend=embedder.backend)
    hits = engine.search("lava flowing from a volcano", k=3)
    assert hits[0].id == "baking.md" and "volcano" in hits[0].text
    with pytest.raises(InputError):
        engine.search("", k=3)


def test_serve_command_serves_a_folder_in_one_command(tmp_path, monkeypatch, capsys, embedder):
    import uvicorn
    from fastapi.testclient import TestClient

    root = _notes(tmp_path / "notes")
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    assert main(["serve", "--corpus", str(root), "--backend", embedder.backend, "--port", "8125"]) == 0
    assert "serving 3 documents on http://127.0.0.1:8125" in capsys.readouterr().out
    with TestClient(seen["app"]) as c:
        assert c.get("/").status_code == 200  # the search page
        r = c.get("/search", params={"q": "lava flowing from a volcano", "top_k": 3})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["id"] for x in results][0] == "baking.md" and len({x["id"] for x in results}) == 3
        assert "volcano" in results[0]["text"]

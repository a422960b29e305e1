"""The static backend (distilled from the packaged MiniLM) and the WordNet dictionary corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from searchkit.cli import main
from searchkit.corpus.dictionary import load_wordnet, parse_line, read_wordnet
from searchkit.corpus.loaders import load_dataset
from searchkit.encoders.embed import Embedder, default_embedder
from searchkit.encoders.static import StaticEncoder, ensure_static, load_static, scheme_of
from searchkit.errors import DatasetError, ModelNotFoundError, SearchIndexError
from searchkit.index.manifest import read_manifest

SAMPLE = Path(__file__).parent / "wordnet_sample"
ROOT = Path(__file__).resolve().parent.parent


def _tiny_model(folder: Path) -> Path:
    """Write a one-layer BERT (hidden 16, 67-piece vocabulary, seeded) with a fast tokenizer to ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = "the a of to and fear heights spiders sleep walk word read back forward cure all ills dead body king wife".split()  # 21
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"],
             *"bcdefghijklmnop"]  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(str(folder))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)  # fmt: skip
    BertModel(cfg).eval().save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model and its static encoder (distilled into a private cache)."""
    root = tmp_path_factory.mktemp("tiny-static")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEARCHKIT_CACHE", str(root / "cache"))
    source = _tiny_model(root / "tiny-bert")
    yield source, StaticEncoder(source, dim=8)
    mp.undo()


def test_tiny_distillation_is_pca_of_the_transformer_on_each_piece_zipf_weighted(tiny):
    import torch
    from model2vec.distill.inference import compute_weights
    from transformers import AutoModel

    source, enc = tiny
    assert enc.get_embedding_dimension() == 8 and enc.scheme == scheme_of(8) == "m2v-v1-8"
    model = AutoModel.from_pretrained(str(source)).eval()
    vocab = (source / "vocab.txt").read_text().splitlines()
    emb = enc.model.embedding.astype(np.float64)
    rows = [(i, vocab.index(t)) for i, t in enumerate(enc.model.tokens) if not t.startswith("[")]
    assert len(rows) == len(vocab) - 5  # every piece but the five special tokens
    with torch.no_grad():  # each piece alone, [CLS] piece [SEP], mean-pooled: the raw vectors distillation starts from
        raw = np.stack([model(torch.tensor([[2, j, 3]])).last_hidden_state[0].mean(0).double().numpy() for _, j in rows])
    w = compute_weights(len(emb), sif_coefficient=1e-4)[[i for i, _ in rows]]  # Zipf weights by vocabulary rank
    # PCA is affine: emb / weight = (raw - mean) @ components, so [raw, 1] fits emb / weight exactly
    target = emb[[i for i, _ in rows]] / w[:, None]
    design = np.hstack([raw, np.ones((len(raw), 1))])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    assert np.abs(design @ coef - target).max() < 1e-3 * np.abs(target).max()
    assert w[0] < w[-1]  # frequent (early) pieces weigh less


def test_static_encoder_is_the_mean_of_its_piece_vectors(tiny):
    _, enc = tiny
    texts = ["fear of heights", "the dead king", "read back and forward", "spiders"]
    out = enc.encode(texts, normalize_embeddings=True)
    for text, v in zip(texts, out):
        ids = enc.model.tokenizer.encode(text, add_special_tokens=False).ids
        want = enc.model.embedding[ids].astype(np.float64).mean(0)
        np.testing.assert_allclose(v, want / np.linalg.norm(want), atol=1e-6)
    ref = enc.model.encode(texts)  # model2vec's own inference
    np.testing.assert_allclose(out, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-6)


def test_distillation_runs_once_and_is_reused(tiny, monkeypatch):
    import searchkit.encoders.static as static

    source, enc = tiny
    monkeypatch.setattr(static, "distill", lambda *a, **k: pytest.fail("distilled again"))
    assert ensure_static(source, 8) == enc.folder
    assert json.loads((enc.folder / "meta.json").read_text())["scheme"] == "m2v-v1-8"


def test_a_damaged_static_model_names_the_folder_to_delete(tiny, tmp_path):
    _, enc = tiny
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in enc.folder.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    blob = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelNotFoundError, match=f"damaged .*delete the folder {re.escape(str(bad))} and run again"):
        load_static(bad)
    (bad / "tokenizer.json").unlink()
    with pytest.raises(ModelNotFoundError, match="incomplete \\(tokenizer.json missing\\): delete the folder"):
        load_static(bad)


@pytest.fixture(scope="module")
def static():
    return default_embedder("static")


def test_the_packaged_model_distils_to_384_dimensions(static):
    assert static.dim == 384 and static.backend == "static"
    assert static.cache_id == f"sentence-transformers/all-MiniLM-L6-v2@static/{scheme_of(384)}"
    v = static.encode(["a word for fear of heights"])
    assert v.shape == (1, 384) and v.dtype == np.float32 and abs(float(np.linalg.norm(v)) - 1) < 1e-5


def test_same_text_same_vector_alone_or_in_any_batch(static, pydocs):
    texts = pydocs.corpus.embedding_texts()[::7][:64]
    assert len(texts) >= 40
    together = static.encode(texts, progress=False)
    for i in (0, 17, len(texts) - 1):
        assert np.array_equal(static.encode([texts[i]], progress=False)[0], together[i])
    shuffled = static.encode(texts[::-1], batch_size=5, progress=False)[::-1]
    assert np.array_equal(shuffled, together)


def test_a_cut_text_embeds_like_the_whole_one(static, pydocs):
    long = max(pydocs.corpus.embedding_texts(), key=len)
    (cut,), (n,) = static.truncate([long])
    assert n == 256 and len(cut) < len(long)
    assert np.array_equal(static.encode([cut]), static.encode([long]))


@pytest.fixture(scope="module")
def static_index(tmp_path_factory, static):
    out = tmp_path_factory.mktemp("static-index")
    assert main(["build", "--corpus", "pydocs", "--backend", "static", "--out", str(out)]) == 0
    return out


def test_build_records_backend_static_and_its_scheme(static_index):
    m = read_manifest(static_index)
    assert (m.backend, m.scheme, m.dim) == ("static", "m2v-v1-384", 384)


def test_search_command_with_static(static, capsys):
    assert main(["search", "--backend", "static", "-k", "10", "--json", "delete a folder and everything inside it"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["results"]) == 10 and all(isinstance(r["score"], float) for r in out["results"])


def test_serve_with_static_answers_over_http(static_index, monkeypatch, capsys):
    import uvicorn
    from fastapi.testclient import TestClient

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    assert main(["serve", "--index", str(static_index), "--backend", "static"]) == 0
    assert "queries embedded with static" in capsys.readouterr().out
    with TestClient(seen["app"]) as c:
        r = c.get("/search", params={"q": "read a csv file", "top_k": 3})
        assert r.status_code == 200, r.text
        assert len(r.json()["results"]) == 3


def test_a_static_index_is_refused_by_a_minilm_query_encoder(static_index, capsys):
    assert main(["serve", "--index", str(static_index), "--backend", "onnx-int8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different vector spaces" in err and "--backend static" in err, err


def test_a_minilm_index_is_refused_by_the_static_encoder(static, tmp_path, capsys):
    from searchkit.engine import SearchEngine
    from searchkit.index.vector import VectorIndex

    int8 = default_embedder("onnx-int8")
    texts = ["one text", "another text"]
    index = VectorIndex.build(["a", "b"], int8.encode(texts), "Flat", model_id=int8.model_id)
    index.backend = "onnx-int8"
    from searchkit.corpus.datasets import Corpus

    with pytest.raises(SearchIndexError, match="backend 'onnx-int8' .* embedded with 'static'.*different vector spaces"):
        SearchEngine(Corpus(["a", "b"], ["", ""], texts), static, index)


def test_tune_fusion_with_static(capsys, static):
    assert main(["tune-fusion", "--corpus", "pydocs", "--backend", "static", "--folds", "2"]) == 0
    assert "encoder static" in capsys.readouterr().out


def test_an_unknown_backend_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", "--backend", "static2", "q"])
    assert e.value.code == 2 and "invalid choice: 'static2'" in capsys.readouterr().err
    with pytest.raises(Exception, match="unknown encoder backend 'static2'"):
        Embedder(backend="static2")


def test_wordnet_sample_one_document_per_synset():
    c = read_wordnet(SAMPLE)
    assert len(c) == 55 and len(set(c.ids)) == 55
    i = c.row("n14382766")
    assert (c.titles[i], c.texts[i]) == ("acrophobia", "a morbid fear of great heights")
    assert c.titles[c.row("r00001740")] == "a cappella"  # underscores become spaces
    assert c.titles[c.row("n10611361")] == "sleepwalker, somnambulist, noctambulist"
    assert {d[0] for d in c.ids} == {"n", "v", "a", "r"}


def test_wordnet_sample_with_the_judged_queries():
    ds = load_wordnet(SAMPLE)
    assert len(ds.queries) == 50 and ds.qrels["d001"] == {"n14382766": 1}
    assert ds.queries["d001"] == "a word for fear of heights"


def test_wordnet_errors_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHKIT_WORDNET_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match="apt-get install wordnet-base, or set SEARCHKIT_WORDNET_DIR"):
        load_dataset("wordnet")
    with pytest.raises(DatasetError, match="data.noun:3: not a WordNet data line"):
        parse_line("00001740 03 n zz entity 0 | x", tmp_path / "data.noun", 3)


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").is_file(), reason="apt-get install wordnet-base")
def test_the_whole_dictionary_has_six_figures():
    ds = load_dataset("wordnet")
    assert len(ds.corpus) == 117659 and len(ds.judged_queries()) == 50


def test_readme_quotes_the_static_measurements():
    readme = (ROOT / "README.md").read_text()
    assert "python benchmarks/encoders.py --dataset pydocs --dataset ../shared/beir/scifact --dataset wordnet" in readme
    assert "in **16.1 s** (goal ≤ 2 min, met)" in readme
    assert "| static (distilled) |" in readme and "--backend static" in readme

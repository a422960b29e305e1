"""A model folder's files: the weights check, the content hash an index manifest records, ``searchkit.json``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from searchkit.errors import ModelNotFoundError

WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_HASHED = ("config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json", "tokenizer.json",
           "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")  # fmt: skip
_hashes: dict[tuple, str] = {}


def check_weights(folder: str | Path) -> Path:
    """Return the weight file of the model in ``folder``; raise ModelNotFoundError naming the folder if it has none."""
    folder = Path(folder)
    found = [folder / w for w in WEIGHTS if (folder / w).is_file()]
    if not found:
        raise ModelNotFoundError(
            f"the model folder {folder} has no weights ({' or '.join(WEIGHTS)} missing): copy the whole folder "
            "again, or train it again with python -m searchkit finetune --out FOLDER --overwrite"
        )
    return found[0]


def model_sha256(folder: str | Path) -> str:
    """Return the sha256 over a model folder's weights, config and tokenizer files (cached by size and mtime)."""
    folder = Path(folder).resolve()
    files = [check_weights(folder)] + [folder / f for f in _HASHED if (folder / f).is_file()]
    key = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _hashes:
        h = hashlib.sha256()
        for f in files:
            h.update(f"{f.relative_to(folder).as_posix()}\0".encode())
            with open(f, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
        _hashes[key] = h.hexdigest()
    return _hashes[key]


def tuned_info(folder: str | Path) -> dict | None:
    """Return the ``searchkit.json`` of a fine-tuned model folder (None for other models)."""
    path = Path(folder) / "searchkit.json"
    return json.loads(path.read_text()) if path.is_file() else None

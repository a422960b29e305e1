"""Run the sentence encoder with ONNX Runtime, in float32 or int8, giving each text the same vector in any batch.

The ONNX files are exported once, offline, from the local model folder (``torch.onnx.export`` of the
transformer with mean pooling, then ``onnxruntime.quantization.quantize_static`` calibrated on a fixed sample of
text shipped in ``data/encoders/``) into ``data/cache/onnx/<name>/`` and reused afterwards.

Same text, same vector: activation scales are fixed at export (dynamic quantization computed them per call, over
the whole padded batch, so a text's vector moved with its neighbours); each call holds texts of one token count,
so nothing is padded; mean pooling is a per-text matrix product. A text's vector is then bit-identical alone,
anywhere in any batch, at any thread count (``tests/test_determinism.py``). :class:`OnnxEncoder` offers the part of the
SentenceTransformer surface that :class:`searchkit.encoders.embed.Embedder` calls: ``encode`` and
``get_embedding_dimension``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from searchkit.config import DATA_DIR, cache_dir
from searchkit.errors import ModelNotFoundError
from searchkit.storage import atomic_folder
from searchkit.validation import check_positive_int, check_texts

EXPORT_VERSION = 3  # bump when the exported graph changes, so old exports (and vectors cached from them) are not reused
SCHEME = f"static-v{EXPORT_VERSION}"  # names the int8 scheme in cache ids and index manifests
CALIBRATION = DATA_DIR / "encoders" / "int8-calibration.txt"  # 300 docstring summaries: fixed activation ranges
FLOAT_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _check_source(source: Path) -> None:
    """Raise ModelNotFoundError unless ``source`` is a local sentence-transformers folder with mean pooling."""
    missing = [f for f in ("config.json", "tokenizer.json") if not (source / f).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"cannot export {source} to ONNX: {', '.join(missing)} missing. Fix: pass the folder of a local "
            "sentence-transformers model with a fast tokenizer (the packaged all-MiniLM-L6-v2 works)"
        )
    pooling = _read_json(source / "1_Pooling" / "config.json")
    if pooling and not (pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode") == "mean"):  # old, new keys
        raise ModelNotFoundError(
            f"the model in {source} does not use mean pooling ({pooling}): the ONNX backend supports mean "
            "pooling only. Fix: use backend='torch' for this model"
        )


def export_name(source: str | Path, name: str | None = None) -> str:
    """Return the export folder name: ``name`` (default: the folder's) plus a fingerprint of config and weights."""
    source = Path(source)
    h = hashlib.sha256(f"v{EXPORT_VERSION}".encode())
    h.update(CALIBRATION.read_bytes())  # other calibration text, other int8 model
    for f in ("config.json", "tokenizer.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        p = source / f
        h.update(p.read_bytes() if p.is_file() else b"-")
    for f in sorted(source.glob("*.safetensors")) + sorted(source.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    if (source / "searchkit.json").is_file():  # fine-tuned: same sizes as its base model, so fingerprint the content
        from searchkit.encoders.model_files import model_sha256

        h.update(model_sha256(source).encode())
    return f"{name or source.name}-{h.hexdigest()[:12]}"


def export_dir(source: str | Path, name: str | None = None) -> Path:
    """Return ``data/cache/onnx/<name>-<fingerprint>`` for ``source`` (not created)."""
    return cache_dir() / "onnx" / export_name(source, name)


def _export_float(source: Path, path: Path) -> None:
    """Write transformer + mean pooling to ``path`` as ONNX: 3 int64 ``(batch, seq)`` inputs -> ``(batch, dim)``."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    bert = AutoModel.from_pretrained(str(source), local_files_only=True, attn_implementation="eager").eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
            m = attention_mask.unsqueeze(1).to(h.dtype)  # (batch, 1, seq): a per-text product, batch-invariant
            return torch.matmul(m, h).squeeze(1) / m.sum(2).clamp(min=1e-9)  # (ReduceSum differs for batch 1)

    ids = torch.ones((2, 8), dtype=torch.long)
    example = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shape checks that are constant for BERT
        torch.onnx.export(
            MeanPooled(bert), example, str(path), input_names=list(INPUTS), output_names=["sentence_embedding"],
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in INPUTS}, "sentence_embedding": {0: "batch"}},
            opset_version=17, do_constant_folding=True, dynamo=False,
        )  # fmt: skip


def ensure_export(source: str | Path, name: str | None = None, max_length: int = 256) -> Path:
    """Export ``source`` to float and int8 ONNX once; return the folder holding both (reused when present)."""
    source = Path(source)
    _check_source(source)
    final = export_dir(source, name)
    if (final / "meta.json").is_file():
        return final
    with atomic_folder(final, keep_existing=True) as tmp:  # another process may finish the same export first
        _export_float(source, tmp / FLOAT_FILE)
        _quantize_static(tmp / FLOAT_FILE, tmp / INT8_FILE, source, max_length)
        shutil.copy2(source / "tokenizer.json", tmp / "tokenizer.json")
        meta = {
            "source": str(source), "export_version": EXPORT_VERSION, "max_length": max_length,
            "files": {"float": FLOAT_FILE, "int8": INT8_FILE}, "inputs": list(INPUTS),
            "int8": "quantize_static (QOperator, MinMax): QInt8 per-channel weights of the MatMuls but the FFN "
                    "down-projections, uint8 activations with ranges fixed on data/encoders/int8-calibration.txt",
            "scheme": SCHEME, "calibration_sha256": hashlib.sha256(CALIBRATION.read_bytes()).hexdigest(),
            "output": "sentence_embedding (mean-pooled, not normalized)",
        }  # fmt: skip
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))  # written last: marks a complete export
    return final


class OnnxEncoder:
    """The sentence encoder on ONNX Runtime: ``encode(texts) -> (n, dim)`` float32, like a SentenceTransformer."""

    def __init__(
        self, source: str | Path, quantized: bool = True, threads: int | None = None, name: str | None = None,
        max_length: int | None = None,
    ):  # fmt: skip
        from tokenizers import Tokenizer

        source = Path(source)
        cfg = _read_json(source / "sentence_bert_config.json")
        self.max_length = int(max_length or cfg.get("max_seq_length") or 256)
        self.folder = ensure_export(source, name, self.max_length)
        self.quantized = quantized
        self.path = self.folder / (INT8_FILE if quantized else FLOAT_FILE)
        if threads is None:  # same thread count as torch, so side-by-side timings are fair
            import torch

            threads = torch.get_num_threads()
        self.set_threads(threads)
        self._dim = int(_read_json(source / "1_Pooling" / "config.json").get("word_embedding_dimension")
                        or _read_json(source / "config.json")["hidden_size"])  # fmt: skip
        tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tok.enable_truncation(max_length=self.max_length)
        tok.no_padding()  # each call holds texts of one token count: nothing to pad
        self.tokenizer = tok
        self.scheme = SCHEME if quantized else f"float-v{EXPORT_VERSION}"

    def __repr__(self) -> str:
        return f"OnnxEncoder({self.path.name!r}, threads={self.threads})"

    def set_threads(self, threads: int) -> None:
        """Run later calls on ``threads`` threads (ONNX Runtime fixes them per session: the session is made anew)."""
        import onnxruntime as ort

        self.threads = check_positive_int("threads", threads)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def get_embedding_dimension(self) -> int:
        """Return the embedding dimension (384 for all-MiniLM-L6-v2)."""
        return self._dim

    def encode(
        self,
        texts: Sequence[str] | str,
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        convert_to_numpy: bool = True,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Embed ``texts``; return ``(n, dim)`` float32 (unit length with ``normalize_embeddings=True``)."""
        items = check_texts(texts)
        check_positive_int("batch_size", batch_size)
        encodings = self.tokenizer.encode_batch(items)
        out = np.empty((len(items), self._dim), dtype=np.float32)
        by_length: dict[int, list[int]] = {}  # token count -> rows: a call never mixes lengths, so nothing is padded
        for i, e in enumerate(encodings):
            by_length.setdefault(len(e.ids), []).append(i)
        for n in sorted(by_length, reverse=True):
            rows = by_length[n]
            for start in range(0, len(rows), batch_size):
                idx = rows[start : start + batch_size]
                out[idx] = self.session.run(None, _feeds([encodings[i] for i in idx]))[0]
        if normalize_embeddings:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, np.maximum(norms, 1e-12), out=out)
        return out


def _feeds(encodings: Sequence) -> dict[str, np.ndarray]:
    """Return the model's three int64 ``(batch, seq)`` inputs for tokenizer encodings of one length."""
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


class _Calibration:
    """The calibration sample, one unpadded text per feed: activation ranges never see padding."""

    def __init__(self, tokenizer, texts: list[str]):
        self._feeds = iter([_feeds([e]) for e in tokenizer.encode_batch(texts)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _quantize_static(float_path: Path, int8_path: Path, source: Path, max_length: int) -> None:
    """Write the int8 model: fixed (calibrated) activation ranges, per-channel int8 weights of the weight MatMuls.

    The FFN down-projections stay float: their input is the GELU output, whose outliers cost ~0.05 of cosine
    similarity when quantized with one fixed range (0.9954 mean cosine to float32 without them, 0.939 with).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(source / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    tok.no_padding()
    texts = [line for line in CALIBRATION.read_text().splitlines() if line.strip()]
    graph = onnx.load(str(float_path), load_external_data=False).graph
    weights = {i.name: tuple(i.dims) for i in graph.initializer}
    ffn = _read_json(source / "config.json")["intermediate_size"]
    nodes = [n.name for n in graph.node
             if n.op_type == "MatMul" and n.input[1] in weights and weights[n.input[1]][0] != ffn]  # fmt: skip
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)  # quiet the "consider pre-processing" advice
    try:
        quantize_static(
            str(float_path), str(int8_path), _Calibration(tok, texts), quant_format=QuantFormat.QOperator,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
            op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes, calibrate_method=CalibrationMethod.MinMax,
        )  # fmt: skip
    finally:  # its logging.warning() also installs a root handler: remove it, or DEBUG lines of other
        root.setLevel(level)  # libraries (bm25s) reach the terminal for the rest of the process
        root.handlers[:] = handlers

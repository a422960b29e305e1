"""Index folders on disk: manifests checked against a schema before anything else, data files read safely.

Every manifest format (the flat index today; backends, shards and incremental state later) subclasses
:class:`ManifestModel` and is read with :func:`load_manifest`, so one bad field always gives one line naming
the field, its value and the fix. Files a manifest names are opened only if they are regular files inside the
index folder (after following links), and are checked against their sha256 before they are used.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError, field_validator

from searchkit.errors import SearchIndexError
from searchkit.storage import write_atomic

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few hundred bytes; anything this large is not one
REBUILD = "rebuild the index with python -m searchkit build"

FileName = Annotated[
    StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$", description="a file name inside the index folder")
]
Sha256 = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$", description="64 lowercase hex digits (a sha256)")]
PositiveInt = Annotated[StrictInt, Field(ge=1, description="a whole number of at least 1")]
Count = Annotated[StrictInt, Field(ge=0, description="a whole number of at least 0")]


class ManifestModel(BaseModel):
    """Base of every manifest schema: strict types (no "384" for 384, no true for 1), no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    kind: ClassVar[str] = "index"  # what the manifest describes, for messages

    format: StrictInt = Field(description=f"{FORMAT_VERSION} (the format this searchkit reads)")

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: int) -> int:
        if v != FORMAT_VERSION:
            raise ValueError("another format")
        return v


class SourceState(BaseModel):
    """What one document put into an index, for incremental rebuilds: its content hash and its passage count."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    sha256: Sha256
    passages: PositiveInt = Field(description="how many passages (vectors) the document has, at least 1")


class BuiltIndex(ManifestModel):
    """What an index holds: vectors of which model, backend and dimension, compared how, in which faiss index."""

    model: StrictStr | None = Field(description="the embedding model's name (a string) or null")
    model_sha256: Sha256 | None = Field(
        None, description="null or the sha256 over the model folder's weights, config and tokenizer (64 hex digits)"
    )
    backend: Literal["torch", "onnx", "onnx-int8", "static"] | None = Field(
        None, description="the encoder backend that made the vectors: 'torch', 'onnx', 'onnx-int8', 'static' or null"
    )
    scheme: StrictStr | None = Field(
        None, max_length=40, description="the ONNX or static scheme (e.g. 'static-v3', 'm2v-v1-384') or null"
    )
    dim: PositiveInt = Field(description="the vector dimension, a whole number of at least 1 (e.g. 384)")
    metric: Literal["ip", "l2"] = Field(description="'ip' or 'l2'")
    factory: StrictStr = Field(min_length=1, max_length=200, description="a faiss factory string such as 'Flat'")


class IndexManifest(BuiltIndex):
    """The manifest of a saved :class:`~searchkit.index.vector.VectorIndex`: what was built, and the files it lives in."""

    count: Count = Field(description="the number of vectors, a whole number of at least 0")
    faiss_version: StrictStr | None = Field(None, description="the faiss version that wrote the index")
    index_file: FileName
    index_sha256: Sha256
    ids_file: FileName
    ids_sha256: Sha256
    ef_search: PositiveInt | None = Field(None, description="null or a whole number of at least 1")
    nprobe: PositiveInt | None = Field(None, description="null or a whole number of at least 1")
    sources_file: FileName | None = Field(None, description="null or the file of incremental-build state")
    sources_sha256: Sha256 | None = None


M = TypeVar("M", bound=ManifestModel)
SOURCES = TypeAdapter(dict[StrictStr, SourceState])  # {document id: SourceState}, the sources file's content
_IDS = TypeAdapter(list[StrictStr | None])


def _shown(value: Any, limit: int = 60) -> str:
    """Return ``value`` as JSON, cut to ``limit`` characters (a hostile manifest may hold megabytes)."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _expected(schema: type[ManifestModel], field: str) -> str:
    info = schema.model_fields.get(field)
    if info is None:
        return "absent: this searchkit does not know the field"
    if info.description:
        return info.description
    for meta in info.metadata:  # Annotated types carry their description in the metadata
        if getattr(meta, "description", None):
            return meta.description
    return str(info.annotation)


def schema_error_line(exc: ValidationError, source: Path, schema: type[ManifestModel]) -> str:
    """Return one line for the first error of ``exc``: the field, its value, what it must be, and the fix."""
    errors = exc.errors(include_url=False)
    missing = [str(e["loc"][0]) for e in errors if e["type"] == "missing"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if missing:
        return f"{source} lacks {', '.join(missing)}: not a searchkit {schema.kind} manifest, {REBUILD}"
    e = errors[0]
    field = ".".join(str(p) for p in e["loc"]) or "the manifest"
    if e["type"] == "extra_forbidden":
        return f"{source} has an unknown field {field!r}{more}: not a manifest this searchkit wrote, {REBUILD}"
    expected = _expected(schema, str(e["loc"][0]))
    return f"{source}: {field} is {_shown(e['input'])} but must be {expected}{more}: {REBUILD}"


def _checked_path(folder: Path, name: str, what: str) -> Path:
    """Return ``folder/name`` resolved; refuse links leading out of ``folder``, and anything not a regular file."""
    path = folder / name
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise SearchIndexError(f"{path} is missing: the {what} is incomplete, {REBUILD}") from None
    except (OSError, RuntimeError) as e:  # a link loop, a path too long
        raise SearchIndexError(f"{path} cannot be opened ({type(e).__name__}): {REBUILD}") from None
    if not real.is_relative_to(folder.resolve()):
        raise SearchIndexError(
            f"{path} is a link to {real}, outside the index folder: copy the file into {folder} or {REBUILD}"
        )
    mode = real.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, pipe or socket"
        raise SearchIndexError(f"{path} is {kind}, not a regular file: {REBUILD}")
    return real


def read_manifest(folder: str | Path, schema: type[M] = IndexManifest) -> M:  # type: ignore[assignment]
    """Read ``folder/manifest.json`` and check it against ``schema``; raise SearchIndexError with one line if bad."""
    folder = Path(folder)
    if not (folder / MANIFEST).exists() and not (folder / MANIFEST).is_symlink():
        raise SearchIndexError(f"no index in {folder}: {MANIFEST} is missing; build one with python -m searchkit build")
    path = _checked_path(folder, MANIFEST, "index")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise SearchIndexError(f"{folder / MANIFEST} is over {MAX_MANIFEST_BYTES} bytes, too large to be a manifest: {REBUILD}")
    try:
        raw = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise SearchIndexError(f"{folder / MANIFEST} is not valid JSON ({e}): the index is damaged, {REBUILD}") from None
    except RecursionError:  # e.g. 100,000 "[": the parser's depth limit
        raise SearchIndexError(f"{folder / MANIFEST} is JSON nested too deeply: the index is damaged, {REBUILD}") from None
    if not isinstance(raw, dict):
        raise SearchIndexError(f"{folder / MANIFEST} holds {type(raw).__name__}, not a JSON object: {REBUILD}")
    try:
        return schema.model_validate(raw)
    except ValidationError as e:
        raise SearchIndexError(schema_error_line(e, folder / MANIFEST, schema)) from None


def read_verified(folder: Path, name: str, sha: str, keep: bool = True) -> tuple[Path, bytes]:
    """Return the checked path of ``folder/name`` and (if ``keep``) its bytes, after its sha256 matched ``sha``."""
    path = _checked_path(folder, name, "index")
    h = hashlib.sha256()
    chunks = []
    with open(path, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # replaced between the check and the open
            raise SearchIndexError(f"{folder / name} is not a regular file: {REBUILD}")
        while block := f.read(1 << 20):
            h.update(block)
            if keep:
                chunks.append(block)
    if h.hexdigest() != sha:
        raise SearchIndexError(
            f"{folder / name} fails its checksum (sha256 {h.hexdigest()[:12]}…, expected {sha[:12]}…): {REBUILD}"
        )
    return path, b"".join(chunks)


def parse_ids(blob: bytes, source: Path) -> list[str | None]:
    """Return the document ids stored in an ids file: a JSON list of strings (null for deleted), none twice."""
    try:
        ids = _IDS.validate_json(blob, strict=True)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = "".join(f"[{p}]" for p in err["loc"])
        value = _shown(err["input"])
        what = "a JSON list of document ids (strings, null for deleted ones)"
        if err["type"] == "json_invalid":
            raise SearchIndexError(f"{source} is not valid JSON: it must be {what}; {REBUILD}") from None
        raise SearchIndexError(f"{source}: item {where or 'the file'} is {value} but must be {what}; {REBUILD}") from None
    seen: dict[str, int] = {}
    for i, d in enumerate(ids):
        if d is not None:
            if d in seen:
                raise SearchIndexError(
                    f"{source}: document id {_shown(d)} appears at positions {seen[d]} and {i}; ids must be unique: {REBUILD}"
                )
            seen[d] = i
    return ids


def parse_sources(blob: bytes, source: Path) -> dict[str, SourceState]:
    """Return the incremental-build state in a sources file: ``{document id: {sha256, passages}}``."""
    try:
        return SOURCES.validate_json(blob, strict=True)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "the file"
        raise SearchIndexError(
            f"{source}: {where} is {_shown(err.get('input'))} but must be {{document id: {{sha256, passages}}}}: {REBUILD}"
        ) from None


def sha256(blob: bytes) -> str:
    """Return the hex sha256 of ``blob``."""
    return hashlib.sha256(blob).hexdigest()


def save_manifest(folder: Path, manifest: ManifestModel) -> Path:
    """Write ``manifest`` (validated by its schema when it was made) to ``folder/manifest.json`` atomically."""
    path = folder / MANIFEST
    write_atomic(path, json.dumps(manifest.model_dump(), indent=2).encode())
    return path

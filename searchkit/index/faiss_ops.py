"""faiss-level operations behind :class:`~searchkit.index.vector.VectorIndex`: its kind and per-call search parameters,
deleting while keeping labels, and an empty copy of a trained index to rebuild into."""

from __future__ import annotations

import faiss
import numpy as np

from searchkit.errors import InputError
from searchkit.index.sizing import hnsw_of


def remove_in_place(index: faiss.IndexIDMap2, labels: np.ndarray) -> None:
    """Remove ``labels`` from an id-mapped Flat or IVF index, keeping every other label on its own vector.

    ``IndexIDMap2.remove_ids`` compacts its label table as if the inner index renumbered the remaining
    vectors, as Flat does; an IVF index keeps their old positions, so it is renumbered here to match.
    """
    positions = np.sort(np.flatnonzero(np.isin(faiss.vector_to_array(index.id_map), labels)))
    index.remove_ids(faiss.IDSelectorBatch(labels))
    try:
        ivf = faiss.extract_index_ivf(index.index)
    except RuntimeError:  # not IVF: Flat renumbers by itself
        return
    lists = ivf.invlists
    for i in range(ivf.nlist):
        n = lists.list_size(i)
        if n:
            stored = faiss.rev_swig_ptr(lists.get_ids(i), n)  # a writable view of the list's positions
            stored -= np.searchsorted(positions, stored)


def can_remove(index: faiss.IndexIDMap2) -> bool:
    """True when the wrapped faiss index implements remove_ids (Flat, IVF, SQ/PQ codes; not HNSW)."""
    base = faiss.downcast_index(index.index)
    return isinstance(base, (faiss.IndexFlatCodes, faiss.IndexIVF))


def empty_copy(base: faiss.Index, factory: str, metric: int) -> faiss.Index:
    """Return an empty index like ``base``: trained quantizers kept, data dropped, HNSW build settings copied."""
    fresh = faiss.index_factory(base.d, factory, metric)
    if not fresh.is_trained:  # keep the trained quantizers, drop the data
        fresh = faiss.clone_index(base)
        fresh.reset()
    old, new = hnsw_of(base), hnsw_of(fresh)
    if old is not None and new is not None:
        new.hnsw.efConstruction = old.hnsw.efConstruction
        new.hnsw.efSearch = old.hnsw.efSearch
    return fresh


def index_kind(index: faiss.IndexIDMap2) -> str:
    """Return 'ivf', 'hnsw' or 'flat' (any other exhaustive index) for the search parameters it takes."""
    if faiss.try_extract_index_ivf(index) is not None:
        return "ivf"
    return "hnsw" if hnsw_of(index.index) is not None else "flat"


def search_parameters(
    index: faiss.IndexIDMap2, factory: str, nprobe: int | None, ef_search: int | None,
    selector: faiss.IDSelector | None = None, given: tuple[bool, bool] = (False, False),
) -> faiss.SearchParameters | None:  # fmt: skip
    """Return fresh faiss parameters for one search; ``given`` says whether the caller (not a default) set each knob."""
    kind = index_kind(index)
    if kind == "ivf":
        ivf = faiss.try_extract_index_ivf(index)
        probe = min(int(nprobe or ivf.nprobe), int(ivf.nlist))
        kwargs: dict = {"nprobe": probe}
        if hnsw_of(ivf.quantizer) is not None:  # IVF with an HNSW coarse quantizer
            kwargs["quantizer_params"] = faiss.SearchParametersHNSW(efSearch=max(int(ef_search or 64), probe))
        elif given[1]:
            raise InputError(f"ef_search applies to HNSW indexes, not {factory!r}: use nprobe")
        if selector is not None:
            kwargs["sel"] = selector
        return faiss.SearchParametersIVF(**kwargs)
    if given[0]:
        raise InputError(f"nprobe applies to IVF indexes, not {factory!r}: leave it out")
    if kind == "hnsw":
        ef = int(ef_search or hnsw_of(index.index).hnsw.efSearch)
        if selector is not None:
            return faiss.SearchParametersHNSW(efSearch=ef, sel=selector)
        return faiss.SearchParametersHNSW(efSearch=ef)
    if given[1]:
        raise InputError(f"ef_search applies to HNSW indexes, not {factory!r}: leave it out")
    return faiss.SearchParameters(sel=selector) if selector is not None else None

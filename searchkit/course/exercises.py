"""Checks for the notebooks' exercises: each says what is wrong, not just "failed"."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from searchkit.errors import ExerciseError
from searchkit.index.sizing import MIN_POINTS_PER_CELL


def _ok(message: str) -> None:
    print(f"Correct: {message}")


class _Raised(Exception):
    """The learner's own code raised ``error``: the check lets it out unchanged."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _call(fn, *args):
    """Call the learner's ``fn(*args)``; an exception it raises leaves the check as it was raised."""
    __tracebackhide__ = True
    if not callable(fn):
        raise ExerciseError(f"the answer is {fn!r} (a {type(fn).__name__}), not a function: "
                            "define it with def, as the exercise asks")
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - handed back to the learner unchanged by _grader
        if hasattr(e, "add_note"):  # Python 3.11+: the traceback ends with the call that failed
            e.add_note(f"(the check called {getattr(fn, '__name__', 'your answer')}({', '.join(map(repr, args))[:200]}))")
        raise _Raised(e) from None


def _grader(check: Callable) -> Callable:
    """Make ``check`` answer in one line: a wrong answer is an ExerciseError; the check's own source never shows."""

    @functools.wraps(check)
    def run(*args, **kwargs):
        __tracebackhide__ = True
        try:
            return check(*args, **kwargs)
        except _Raised as raised:  # the learner's traceback, from their call on: the check's frames are not in it
            raise raised.error.with_traceback(raised.error.__traceback__) from None
        except ExerciseError:
            raise
        except Exception as e:  # noqa: BLE001 - the answer had a shape the check cannot grade
            raise ExerciseError(f"{check.__name__} cannot grade what your answer returned ({type(e).__name__}: {e}): "
                                "return what the exercise asks for (a number, an array, a list)") from None

    return run


# -- 01 embeddings ----------------------------------------------------------------------------


@_grader
def check_paraphrase(query: str, document: str, min_cosine: float = 0.5) -> None:
    """Check that ``document`` shares no scored word with ``query`` (BM25 = 0) yet has cosine >= ``min_cosine``."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    from searchkit.encoders.embed import default_embedder
    from searchkit.relevance.lexical import BM25

    for name, value in (("query", query), ("document", document)):
        if not isinstance(value, str) or not value.strip():
            raise ExerciseError(f"{name} is {value!r}: write a sentence in the string")
    bm25 = float(BM25(["doc", "other"], [document, "an unrelated filler sentence"]).scores(query)[0])
    if bm25 > 0:
        raise ExerciseError(
            f"BM25 scores your document {bm25:.2f}: it shares a word with the query after stemming. "
            "Replace the shared words with synonyms."
        )
    q, d = default_embedder().encode([query, document])
    cos = float(q @ d)
    if cos < min_cosine:
        raise ExerciseError(
            f"cosine similarity is {cos:.2f}, below {min_cosine}: the embedding does not see them as the same "
            "meaning yet. Keep the meaning closer to the query."
        )
    _ok(f"BM25 gives 0 but the cosine similarity is {cos:.2f}.")


@_grader
def check_normalize(normalize: Callable[[np.ndarray], np.ndarray]) -> None:
    """Check a learner's ``normalize(x)`` that scales every row of ``x`` to unit length."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    x = np.random.default_rng(7).normal(size=(5, 8)).astype(np.float32) * 3
    got = np.asarray(_call(normalize, x.copy()))
    if got.shape != x.shape:
        raise ExerciseError(f"normalize returned shape {got.shape}, expected {x.shape}: normalize each row, keep the shape")
    norms = np.linalg.norm(got, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-4):
        raise ExerciseError(
            f"row lengths are {np.round(norms, 3).tolist()}, not 1: divide each row by its own length "
            "(np.linalg.norm(x, axis=1, keepdims=True))"
        )
    if not np.allclose(got, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-4):
        raise ExerciseError("rows have length 1 but point in other directions: scale each row, do not change it otherwise")
    _ok("every row has length 1 and keeps its direction.")


def _exercise_vectors(n: int = 500, d: int = 32, seed: int = 3) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# -- 02 faiss indexing ------------------------------------------------------------------------


@_grader
def check_brute_force(top_k: Callable[[np.ndarray, np.ndarray, int], np.ndarray]) -> None:
    """Check a learner's ``top_k(xb, xq, k) -> I`` (row numbers of the k largest inner products) against faiss."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    import faiss

    xb, xq = _exercise_vectors(), _exercise_vectors(5, seed=4)
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    _, want = index.search(xq, 10)
    got = np.asarray(_call(top_k, xb, xq, 10))
    if got.shape != want.shape:
        raise ExerciseError(f"top_k returned shape {got.shape}, expected {want.shape} (one row of k ids per query)")
    if np.array_equal(got, want[:, ::-1]):
        raise ExerciseError("you return the right documents in reverse order: the best (largest inner product) comes first")
    if not np.array_equal(got, want):
        same = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
        raise ExerciseError(
            f"only {same:.0%} of your ids match exact search: sort by the inner product xq @ xb.T, largest first "
            "(np.argsort(-scores, axis=1)[:, :k])"
        )
    _ok("your numpy search returns exactly what IndexFlatIP returns.")


@_grader
def check_nlist(nlist: int, n: int = 1_000_000) -> None:
    """Check an IVF ``nlist`` for ``n`` vectors against the rule of thumb 4·√n to 16·√n (and enough points per cell)."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    low, high = 4 * np.sqrt(n), 16 * np.sqrt(n)
    if not isinstance(nlist, (int, np.integer)) or nlist < 1:
        raise ExerciseError(f"nlist must be a positive whole number, got {nlist!r}")
    if nlist < low:
        raise ExerciseError(f"nlist={nlist} is below 4·√{n} = {low:.0f}: cells would hold too many vectors, search gets slow")
    if nlist > high:
        raise ExerciseError(f"nlist={nlist} is above 16·√{n} = {high:.0f}: too many cells to train well")
    if n / nlist < MIN_POINTS_PER_CELL:
        raise ExerciseError(f"{n} vectors give only {n / nlist:.0f} per cell: "
                            f"k-means wants at least {MIN_POINTS_PER_CELL}; use fewer cells")  # fmt: skip
    _ok(f"nlist={nlist} lies in {low:.0f}–{high:.0f} for {n:,} vectors.")


# -- 03 quantization --------------------------------------------------------------------------


@_grader
def check_pq_bytes(pq_bytes: Callable[[int, int], float]) -> None:
    """Check a learner's ``pq_bytes(m, nbits)``: bytes per vector of a PQ code with ``m`` sub-quantizers."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    for m, nbits in [(8, 8), (16, 8), (48, 8), (32, 4), (64, 6)]:
        want = m * nbits / 8
        got = _call(pq_bytes, m, nbits)
        if not np.isclose(got, want):
            raise ExerciseError(f"pq_bytes({m}, {nbits}) = {got}, expected {want}: each of the m codes takes nbits bits")
    _ok("PQ stores m codes of nbits bits each: m·nbits/8 bytes per vector.")


@_grader
def check_hamming(hamming: Callable[[np.ndarray, np.ndarray], int]) -> None:
    """Check a learner's ``hamming(a, b)`` on packed uint8 binary codes against a direct bit count."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    rng = np.random.default_rng(5)
    for _ in range(20):
        a, b = rng.integers(0, 256, size=48, dtype=np.uint8), rng.integers(0, 256, size=48, dtype=np.uint8)
        want = int(np.unpackbits(a ^ b).sum())
        got = _call(hamming, a, b)
        if got != want:
            raise ExerciseError(f"hamming gave {got}, expected {want}: XOR the bytes, then count the 1 bits (np.unpackbits)")
    _ok("your Hamming distance matches the bit count of a XOR b.")


# -- 04 evaluation ----------------------------------------------------------------------------


@_grader
def check_reciprocal_rank(rr: Callable[[list[str], set[str]], float]) -> None:
    """Check a learner's ``rr(ranked_ids, relevant_ids)``: 1/rank of the first relevant id, 0 if none."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    cases = [(["a", "b", "c"], {"a"}, 1.0), (["a", "b", "c"], {"c", "b"}, 0.5), (["a", "b"], {"z"}, 0.0), ([], {"a"}, 0.0)]
    for ranked, relevant, want in cases:
        got = _call(rr, ranked, relevant)
        if not np.isclose(got, want):
            raise ExerciseError(f"rr({ranked}, {relevant}) = {got}, expected {want}: ranks start at 1, and no hit gives 0")
    _ok("reciprocal rank is 1 / (rank of the first relevant result), 0 when there is none.")


@_grader
def check_dcg(dcg: Callable[[list[int]], float]) -> None:
    """Check a learner's ``dcg(grades)``: sum of grade / log2(rank + 1) over ranks 1..n (linear gain)."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    for grades in ([2, 0, 1], [0, 0, 0], [1], [2, 2, 1, 0, 1]):
        want = sum(g / np.log2(r + 2) for r, g in enumerate(grades))
        got = _call(dcg, grades)
        if not np.isclose(got, want):
            exponential = sum((2**g - 1) / np.log2(r + 2) for r, g in enumerate(grades))
            hint = (
                "that is the exponential gain 2^grade - 1; this course uses gain = grade, as trec_eval, BEIR and "
                "searchkit.relevance.metrics do"
                if np.isclose(got, exponential)
                else "gain = grade, discount log2(rank + 1) with rank from 1"
            )
            raise ExerciseError(f"dcg({grades}) = {got}, expected {want:.4f}: {hint}")
    _ok("your DCG matches the linear-gain formula; nDCG divides it by the DCG of the ideal order.")


# -- 05 serving -------------------------------------------------------------------------------


@_grader
def check_percentile(p99: Callable[[list[float]], float]) -> None:
    """Check a learner's ``p99(latencies_ms)`` against numpy's 99th percentile (linear interpolation)."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    rng = np.random.default_rng(9)
    for n in (100, 1000, 37):
        lat = list(rng.lognormal(1.0, 0.6, size=n))
        want = float(np.percentile(lat, 99))
        got = _call(p99, lat)
        if abs(got - want) > 0.05 * want:
            raise ExerciseError(f"p99 of {n} latencies: got {got:.2f}, expected about {want:.2f} (np.percentile(lat, 99))")
    _ok("your p99 matches: 99% of requests finish within it.")


@_grader
def check_lru(make_cache: Callable[[int], object]) -> None:
    """Check a learner's LRU cache class: ``c = make_cache(capacity)``, ``c.get(key)`` (None on a miss), ``c.put(key, value)``."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    c = _call(make_cache, 2)
    _call(c.put, "a", 1)
    _call(c.put, "b", 2)
    if _call(c.get, "a") != 1:
        raise ExerciseError("get('a') after put('a', 1) did not return 1")
    _call(c.put, "c", 3)  # evicts b, the least recently used ('a' was just read)
    if _call(c.get, "b") is not None:
        raise ExerciseError("'b' should have been evicted: it was the least recently used when 'c' arrived")
    if _call(c.get, "a") != 1 or _call(c.get, "c") != 3:
        raise ExerciseError("'a' and 'c' should still be cached: evict only the least recently used entry")
    _ok("your cache keeps the most recently used entries and evicts the oldest.")


# -- 06 experiments ---------------------------------------------------------------------------


@_grader
def check_assignment(arm_of: Callable[[str], int]) -> None:
    """Check a learner's ``arm_of(session) -> 0 or 1``: the same arm every time for a session, half the sessions each."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    sessions = [f"user-{i}" for i in range(2000)]
    first = [_call(arm_of, s) for s in sessions]
    if any(a not in (0, 1) for a in first):
        raise ExerciseError(f"arm_of returned {next(a for a in first if a not in (0, 1))!r}: return 0 or 1")
    again = [_call(arm_of, s) for s in sessions]
    changed = next((s for s, a, b in zip(sessions, first, again) if a != b), None)
    if changed is not None:
        raise ExerciseError(
            f"session {changed!r} got arm {first[sessions.index(changed)]} and then another: derive the arm from a "
            "hash of the session id (hashlib.sha256), not at random, so a user stays in one arm"
        )
    share = float(np.mean(first))
    if not 0.45 <= share <= 0.55:
        raise ExerciseError(f"{share:.0%} of sessions went to arm 1: a good hash splits them about half and half")
    _ok(f"each session keeps its arm, and {share:.1%} of 2000 sessions are in arm 1.")


@_grader
def check_sign_test(p_value: Callable[[int, int], float]) -> None:
    """Check a learner's two-sided sign test ``p_value(wins, losses)`` against scipy's exact binomial test."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    from scipy.stats import binomtest

    for wins, losses in ((1, 5), (12, 4), (30, 30), (0, 9)):
        want = float(binomtest(wins, wins + losses, 0.5).pvalue)
        got = float(_call(p_value, wins, losses))
        if abs(got - want) > 1e-6:
            hint = (" (that is one tail: a two-sided test doubles it)" if abs(2 * got - want) < 1e-6 else
                    ": count outcomes at least as extreme on both sides, under Binomial(wins + losses, 1/2)")
            raise ExerciseError(f"p_value({wins}, {losses}) = {got:.4f}, expected {want:.4f}{hint}")
    _ok("your sign test matches the exact binomial test.")


# -- 08 your documents --------------------------------------------------------------------------


@_grader
def check_best_per_document(documents: Callable[[list[str], list[float], dict[str, str], int], list]) -> None:
    """Check ``documents(passage_ids, scores, doc_of, k)``: top ``k`` ``(doc_id, score)``, each document once, best score."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    pids = ["a#2", "b", "a#1", "c#3", "c#1", "d", "c#2"]
    scores = [0.91, 0.88, 0.85, 0.70, 0.66, 0.52, 0.40]
    doc_of = {p: p.split("#")[0] for p in pids}
    want = [("a", 0.91), ("b", 0.88), ("c", 0.70), ("d", 0.52)]
    for k in (4, 2, 10):
        got = [(str(d), float(s)) for d, s in _call(documents, pids, scores, doc_of, k)]
        if len({d for d, _ in got}) != len(got):
            raise ExerciseError(f"k={k}: {[d for d, _ in got]} names a document twice: keep only its best passage")
        if got != want[:k]:
            raise ExerciseError(
                f"k={k}: got {got}, expected {want[:k]}: walk the passages best first, keep the first (best) score of "
                "each document, and stop at k documents"
            )
    _ok("each document appears once, at its best passage's score.")


@_grader
def check_cheapest(pick: Callable[[list[dict], int, float], str | None]) -> None:
    """Check ``pick(rows, max_memory, min_recall)``: the factory of least memory meeting both targets, else None."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    rows = [
        {"factory": "Flat", "memory": 1_540_000, "recall": 1.0},
        {"factory": "SQ8", "memory": 392_000, "recall": 0.97},
        {"factory": "HNSW32", "memory": 1_800_000, "recall": 0.99},
        {"factory": "PQ48", "memory": 170_000, "recall": 0.71},
        {"factory": "IVF64,SQ8", "memory": 420_000, "recall": 0.95},
    ]
    cases = [((2_000_000, 0.95), "SQ8"), ((2_000_000, 0.98), "Flat"), ((400_000, 0.99), None),
             ((1_000_000, 0.5), "PQ48"), ((410_000, 0.96), "SQ8")]  # fmt: skip
    for (memory, recall), want in cases:
        got = _call(pick, [dict(r) for r in rows], memory, recall)
        if got != want:
            why = "nothing meets both targets: return None" if want is None else (
                f"{want} is the least memory among those with memory <= {memory:,} and recall >= {recall}")
            raise ExerciseError(f"pick(rows, {memory:,}, {recall}) returned {got!r}, expected {want!r}: {why}")
    _ok("you pick the cheapest index that breaks no target, and none when nothing fits.")


# -- 07 scale out -----------------------------------------------------------------------------


@_grader
def check_shard_merge(merge: Callable[[list[tuple[np.ndarray, np.ndarray]], int], tuple[np.ndarray, np.ndarray]]) -> None:
    """Check a learner's ``merge(parts, k) -> (D, I)``: per-shard inner-product results merged, best first."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    import faiss

    xb, xq = _exercise_vectors(), _exercise_vectors(5, seed=4)
    whole = faiss.IndexFlatIP(xb.shape[1])
    whole.add(xb)
    want_d, want_i = whole.search(xq, 10)
    parts = []
    for rows in np.array_split(np.arange(len(xb)), 3):
        shard = faiss.IndexIDMap(faiss.IndexFlatIP(xb.shape[1]))
        shard.add_with_ids(xb[rows], rows.astype(np.int64))
        parts.append(shard.search(xq, 10))
    got_d, got_i = (np.asarray(a) for a in _call(merge, parts, 10))
    if got_i.shape != want_i.shape:
        raise ExerciseError(f"merge returned ids of shape {got_i.shape}, expected {want_i.shape} (k per query)")
    if not np.array_equal(got_i, want_i):
        smallest = np.concatenate([d for d, _ in parts], axis=1).min(axis=1)
        if np.allclose(np.asarray(got_d)[:, 0], smallest):
            raise ExerciseError(
                "you kept the smallest scores: for inner product the largest is best (faiss.contrib's client_server "
                "merges as for L2 distances and gets recall 0); sort by -D"
            )
        same = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got_i, want_i)])
        raise ExerciseError(f"only {same:.0%} of your ids match one index over all vectors: concatenate the shards' "
                            "D and I per query, then keep the k largest D (np.argsort(-D, axis=1)[:, :k])")  # fmt: skip
    if not np.allclose(got_d, want_d, atol=1e-5):
        raise ExerciseError("the ids are right but the scores are not: take D with the same sort order as I")
    _ok("your merge of three shards returns exactly what one index over all vectors returns.")


@_grader
def check_shard_for(shard_for: Callable[[str, int], int]) -> None:
    """Check a learner's ``shard_for(doc_id, n_shards)``: the shard ``build_shards`` gives a document (crc32 % n)."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    from searchkit.scale.shards import shard_of

    ids = ["shutil.rmtree", "os.rmdir", "pathlib.Path.unlink", "json.loads", "café.au-lait", "日本語", "x", ""]
    for n in (4, 7):
        got = [_call(shard_for, doc_id, n) for doc_id in ids]
        want = [shard_of(doc_id, n) for doc_id in ids]
        if got == want:
            continue
        bad = [s for s in got if not isinstance(s, (int, np.integer)) or not 0 <= s < n]
        if bad:
            raise ExerciseError(f"shard_for returned {bad[0]!r} for {n} shards: "
                                f"return a whole number from 0 to {n - 1} (% n_shards)")  # fmt: skip
        if got == [hash(doc_id) % n for doc_id in ids]:
            raise ExerciseError(
                "you used Python's hash(): for a str it changes with every process (PYTHONHASHSEED), so after a restart "
                "a document is looked for on the wrong shard; use a fixed hash, zlib.crc32(doc_id.encode('utf-8'))"
            )
        i = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
        raise ExerciseError(f"shard_for({ids[i]!r}, {n}) = {got[i]}, expected {want[i]}: "
                            "take zlib.crc32 of the id's UTF-8 bytes, modulo n_shards")  # fmt: skip
    _ok("the same id always goes to the same shard, in every process, as build_shards puts it.")

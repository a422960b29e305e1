"""Exercise checks say what is wrong and accept right answers."""

from __future__ import annotations

import hashlib
import random
import zlib

import numpy as np
import pytest
from scipy.stats import binomtest

from searchkit.course.exercises import check_normalize, check_paraphrase
from searchkit.errors import ExerciseError


def test_check_paraphrase_accepts_a_true_paraphrase(embedder, capsys):
    check_paraphrase("affordable laptops for students", "budget-friendly notebooks for college")
    assert capsys.readouterr().out.startswith("Correct: BM25 gives 0 but the cosine similarity is")


def test_check_paraphrase_explains_shared_words(embedder):
    with pytest.raises(ExerciseError, match="BM25 scores your document .*shares a word with the query"):
        check_paraphrase("cheap laptops", "laptops that cost little")


def test_check_paraphrase_explains_low_cosine(embedder):
    with pytest.raises(ExerciseError, match=r"cosine similarity is -?0\.\d\d, below 0\.5"):
        check_paraphrase("cheap laptops", "sourdough bread recipe")


def test_check_normalize():
    check_normalize(lambda x: x / np.linalg.norm(x, axis=1, keepdims=True))
    with pytest.raises(ExerciseError, match="row lengths are .* not 1: divide each row by its own length"):
        check_normalize(lambda x: x / np.linalg.norm(x))
    with pytest.raises(ExerciseError, match=r"returned shape \(40,\), expected \(5, 8\)"):
        check_normalize(lambda x: x.ravel())


def _lru_class():
    """The course's own LRU (searchkit.serving.cache.LRUCache), behind the exercise's get(key) / put(key, value).

    LRUCache stores float32 vectors, so the small int values travel as one-element vectors; eviction and
    recency are the library's, not a copy.
    """
    from searchkit.serving.cache import LRUCache

    class LRU:
        def __init__(self, capacity):
            self.cache = LRUCache(capacity)

        def get(self, key):
            vec = self.cache.get(key, 1)
            return None if vec is None else int(vec[0])

        def put(self, key, value):
            self.cache.put(key, np.array([value], dtype=np.float32))

    return LRU


class _Forgetful:
    def __init__(self, capacity):
        pass

    def put(self, key, value):
        pass

    def get(self, key):
        return None


def _rr(ranked, relevant):
    return next((1 / (i + 1) for i, d in enumerate(ranked) if d in relevant), 0.0)


def _dcg(grades):
    return sum(g / np.log2(i + 2) for i, g in enumerate(grades))


def _dcg_exponential(grades):
    return sum((2**g - 1) / np.log2(i + 2) for i, g in enumerate(grades))


def _merge(largest: bool):
    def merge(parts, k):
        D = np.concatenate([d for d, _ in parts], axis=1)
        I = np.concatenate([i for _, i in parts], axis=1)
        order = np.argsort(-D if largest else D, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)

    return merge


def _library_merge(parts, k):
    """searchkit.scale.shards.merge_topk behind the exercise's merge(parts of (D, I), k) -> (D, I)."""
    from searchkit.index.vector import SearchResult
    from searchkit.scale.shards import merge_topk

    out = merge_topk([SearchResult(i.tolist(), d.tolist()) for d, i in parts], k)
    return np.array(out.scores), np.array(out.ids)


def _crc32_shard(doc_id, n):
    """The documented rule, written out on purpose: check_shard_for grades against searchkit.scale.shards.shard_of,
    so passing shard_of itself would be circular; this spells the rule independently and so pins shard_of to it."""
    return zlib.crc32(doc_id.encode("utf-8")) % n


@pytest.mark.parametrize(
    "name, right, wrong, message",
    [
        ("check_brute_force", lambda xb, xq, k: np.argsort(-(xq @ xb.T), axis=1)[:, :k],
         lambda xb, xq, k: np.argsort(xq @ xb.T, axis=1)[:, -k:], "right documents in reverse order"),
        ("check_pq_bytes", lambda m, nbits: m * nbits / 8, lambda m, nbits: m * nbits,
         r"pq_bytes\(8, 8\) = 64, expected 8.0"),
        ("check_hamming", lambda a, b: int(np.unpackbits(a ^ b).sum()), lambda a, b: int((a != b).sum()),
         "XOR the bytes, then count the 1 bits"),
        ("check_reciprocal_rank", _rr, lambda ranked, relevant: 1.0, "ranks start at 1"),
        ("check_dcg", _dcg, lambda grades: float(sum(grades)), r"dcg\(\[2, 0, 1\]\) = 3.0, expected 2.5000: gain = grade"),
        ("check_dcg", _dcg, _dcg_exponential, r"expected 2.5000: that is the exponential gain 2\^grade - 1; this course"),
        ("check_percentile", lambda lat: float(np.percentile(lat, 99)), lambda lat: max(lat) * 2,
         r"p99 of 100 latencies: got"),
        ("check_lru", _lru_class(), _Forgetful, r"get\('a'\) after put\('a', 1\) did not return 1"),
        ("check_assignment", lambda s: hashlib.sha256(s.encode()).digest()[0] & 1,
         lambda s: random.randrange(2), r"session 'user-\d+' got arm \d and then another"),
        ("check_assignment", lambda s: hashlib.sha256(s.encode()).digest()[0] & 1,
         lambda s: int(s.endswith("7")), r"10% of sessions went to arm 1"),
        ("check_sign_test", lambda w, l: binomtest(w, w + l).pvalue, lambda w, l: binomtest(w, w + l).pvalue / 2,
         r"p_value\(1, 5\) = 0.1094, expected 0.2188 \(that is one tail"),
        ("check_shard_merge", _library_merge, _merge(largest=False), r"you kept the smallest scores"),
        ("check_shard_merge", _library_merge, lambda parts, k: parts[0], r"only \d+% of your ids match"),
        ("check_shard_for", _crc32_shard, lambda d, n: hash(d) % n,
         r"you used Python's hash\(\): for a str it changes with every process"),
        ("check_shard_for", _crc32_shard, lambda d, n: zlib.crc32(d.encode("utf-8")),
         r"shard_for returned \d+ for 4 shards: return a whole number from 0 to 3"),
        ("check_shard_for", _crc32_shard, lambda d, n: len(d) % n,
         r"shard_for\('os.rmdir', 4\) = 0, expected 1: take zlib.crc32"),
    ],
)  # fmt: skip
def test_exercise_checks_accept_right_and_explain_wrong_answers(name, right, wrong, message, capsys):
    import searchkit.course.exercises as ex

    getattr(ex, name)(right)
    assert capsys.readouterr().out.startswith("Correct: ")
    with pytest.raises(ExerciseError, match=message):
        getattr(ex, name)(wrong)


def test_check_nlist():
    from searchkit.course.exercises import check_nlist

    check_nlist(8192)
    with pytest.raises(ExerciseError, match=r"nlist=10 is below 4·√1000000 = 4000"):
        check_nlist(10)
    with pytest.raises(ExerciseError, match="above 16·√1000000 = 16000"):
        check_nlist(50_000)
    with pytest.raises(ExerciseError, match="only 14 per cell: k-means wants at least 39"):
        check_nlist(512, n=7416)


def _shown(cell: str) -> str:
    """What IPython shows a learner for ``cell``: its output and traceback, colours stripped."""
    import re

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    with capture_output() as out:
        shell.run_cell("from searchkit.course.exercises import check_dcg\n" + cell)
    return re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)


def test_a_wrong_answer_is_one_line_without_the_checks_source():
    shown = _shown("def my_dcg(grades):\n    return 0.0\ncheck_dcg(my_dcg)")
    lines = [line for line in shown.splitlines() if line.strip()]
    assert lines == ["ExerciseError: dcg([2, 0, 1]) = 0.0, expected 2.5000: gain = grade, discount log2(rank + 1) with rank from 1"]


def test_an_answer_the_check_cannot_grade_is_one_line_too():
    shown = _shown("check_dcg(lambda grades: None)")
    assert shown.strip().startswith("ExerciseError: check_dcg cannot grade what your answer returned (TypeError:"), shown
    assert len(shown.strip().splitlines()) == 1, shown
    assert _shown("check_dcg(3)").strip() == (
        "ExerciseError: the answer is 3 (a int), not a function: define it with def, as the exercise asks"
    )


def test_an_error_in_the_learners_code_shows_their_code_not_the_check():
    shown = _shown("def my_dcg(grades):\n    return grades[7]\ncheck_dcg(my_dcg)")
    assert "IndexError" in shown and "return grades[7]" in shown, shown
    assert "(the check called my_dcg([2, 0, 1]))" in shown, shown
    for checker in ("np.log2", "exponential", "_call", "check(*args", "want ="):
        assert checker not in shown, (checker, shown)


def test_a_right_answer_passes_in_ipython():
    shown = _shown("def my_dcg(grades):\n    return sum(g / np.log2(r + 2) for r, g in enumerate(grades))\n"
                   "import numpy as np\ncheck_dcg(my_dcg)")
    assert shown.startswith("Correct: your DCG matches the linear-gain formula"), shown

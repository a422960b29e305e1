"""The shared input checks: each accepts what it should and names the bad value and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from searchkit.errors import InputError
from searchkit.validation import check_positive_int, check_queries, check_query, check_texts, normalize_query


def test_check_positive_int_accepts_whole_numbers_in_range():
    assert check_positive_int("k", 3) == 3 and type(check_positive_int("k", np.int64(3))) is int
    assert check_positive_int("size", 0, minimum=0) == 0
    assert check_positive_int("M", 256, minimum=4, maximum=256) == 256
    assert check_positive_int("nprobe", None, none_ok=True) is None


@pytest.mark.parametrize(
    "value,kw,message",
    [
        (0, {}, "k must be a positive integer, got 0"),
        (True, {}, "k must be a positive integer, got True"),
        (2.0, {}, "k must be a positive integer, got 2.0"),
        ("3", {}, "k must be a positive integer, got '3'"),
        (None, {}, "k must be a positive integer, got None"),
        (-1, {"minimum": 0}, "k must be a non-negative integer, got -1"),
        (99, {"minimum": 100}, "k must be an integer of at least 100, got 99"),
        (3, {"minimum": 4, "maximum": 8, "hint": "4 is usual"}, "k must be an integer from 4 to 8, got 3 (4 is usual)"),
        (0, {"none_ok": True}, "k must be a positive integer or None, got 0"),
    ],
)
def test_check_positive_int_names_the_value(value, kw, message):
    with pytest.raises(InputError) as e:
        check_positive_int("k", value, **kw)
    assert str(e.value) == message


def test_texts_and_queries():
    assert check_texts(("a", "b")) == ["a", "b"]
    with pytest.raises(InputError, match=r"got a single str: wrap it as \[text\]"):
        check_texts("abc")
    with pytest.raises(InputError, match=r"texts\[1\] is 2 \(int\), not a string"):
        check_texts(["a", 2])
    assert check_query(" a ") == " a "
    with pytest.raises(InputError, match="query must be a non-empty string, got ' '"):
        check_query(" ")
    assert check_queries(("x", "y")) == ["x", "y"]
    with pytest.raises(InputError, match="query 1 is None: give a non-empty string"):
        check_queries(["x", None])


def test_normalize_query_collapses_whitespace_and_control_characters():
    assert normalize_query("  read\t a\n\nCSV  file ") == "read a CSV file"
    assert normalize_query("a\x00b\x07c") == "a b c"
    assert normalize_query("ｆｕｌｌ width") == "full width"  # NFKC
    assert normalize_query("café 東京 مرحبا 🙂") == "café 東京 مرحبا 🙂"
    with pytest.raises(InputError, match="query must be a string, got int"):
        normalize_query(3)  # type: ignore[arg-type]

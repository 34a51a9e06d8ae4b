from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.money import format_micros, parse_micros


@pytest.mark.parametrize(
    ("text", "micros"),
    [("0.15", 150_000), ("0.075", 75_000), ("1", 1_000_000), ("0.000001", 1), ("0", 0), ("12.50", 12_500_000)],
)
def test_decimal_strings_become_exact_micros(text: str, micros: int) -> None:
    assert parse_micros(text) == micros


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(0.15, "not a float"), ("0.0000001", "more than 6 decimal places"), ("-1", "non-negative"),
     ("abc", "not a decimal"), ("NaN", "finite"), (None, "decimal string"), (True, "not a float")],
)
def test_anything_inexact_is_refused_not_rounded(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_micros(value, "price")


@given(st.integers(min_value=0, max_value=10**15))
def test_format_and_parse_round_trip(micros: int) -> None:
    assert parse_micros(format_micros(micros)) == micros
    assert format_micros(micros).split(".")[1].__len__() == 6

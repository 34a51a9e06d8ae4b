"""Budget window strings: one canonical spelling per length, and clear refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.billing.manage.windows import MAX_SECONDS, MIN_SECONDS, UNITS, format_window, parse_window

lengths = st.integers(MIN_SECONDS, MAX_SECONDS)
spellings = st.sampled_from(sorted(UNITS)).flatmap(
    lambda unit: st.tuples(st.integers(1, MAX_SECONDS // UNITS[unit]), st.just(unit))
).filter(lambda t: t[0] * UNITS[t[1]] >= MIN_SECONDS).map(lambda t: f"{t[0]}{t[1]}")


@given(lengths)
def test_format_then_parse_gives_the_length_back(seconds: int) -> None:
    assert parse_window(format_window(seconds)) == seconds


@given(spellings)
def test_parse_then_format_is_canonical_and_stable(text: str) -> None:
    canonical = format_window(parse_window(text))
    assert parse_window(canonical) == parse_window(text)
    assert format_window(parse_window(canonical)) == canonical
    assert len(canonical) <= len(text)  # the largest exact unit never spells it longer


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [("90m", 5400, "90m"), ("5h", 18000, "5h"), ("1d", 86400, "1d"), ("24h", 86400, "1d"),
     ("30d", 2_592_000, "30d"), ("1w", 604_800, "1w"), ("14d", 1_209_600, "2w"), ("60s", 60, "1m"),
     ("366d", MAX_SECONDS, "366d")],
)
def test_examples(text: str, seconds: int, canonical: str) -> None:
    assert parse_window(text) == seconds
    assert format_window(seconds) == canonical


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("5x", "unit s, m, h, d or w"), ("0h", "between 60s and 366d"), ("400d", "between 60s and 366d"),
     ("59s", "between 60s and 366d"), ("53w", "between 60s and 366d"), ("", "unit"), ("h", "unit"),
     ("5 h", "unit"), ("5H", "unit"), ("-5h", "unit"), ("05h", "unit"), ("1.5h", "unit"),
     ("99999999999d", "unit")],
)
def test_bad_windows_are_refused_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_window(text)

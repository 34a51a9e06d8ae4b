"""Whole numbers from outside: what ``int`` would choke on is None, never an exception."""

from __future__ import annotations

import pytest

from services.common.numbers import whole_number


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("20", 20), ("007", 7), ("9" * 18, 10**18 - 1)])
def test_ascii_digits_are_their_number(text: str, value: int) -> None:
    assert whole_number(text) == value


@pytest.mark.parametrize("text", ["", "-1", "+1", " 1", "1.0", "1e3", "x", "²", "①", "١٢", "9" * 19, "1" * 5000])
def test_anything_else_is_none(text: str) -> None:
    """"²" and "①" pass str.isdigit and make int raise; 5,000 digits pass it and exceed int's limit."""
    assert whole_number(text) is None

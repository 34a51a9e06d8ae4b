"""Whole numbers written by someone else (a query string, a header, a JSON key).

``str.isdigit`` is the wrong gate before ``int``: it says yes to "²" and "①", which ``int`` refuses,
and to a string of ten thousand digits, which ``int`` refuses past its conversion limit. Each of those
was a 500 where a 400 was due.
"""

from __future__ import annotations


def whole_number(text: str, max_digits: int = 18) -> int | None:
    """The value of ``text`` when it is only ASCII digits (at most ``max_digits``), else None."""
    if not text or len(text) > max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)

"""Money in Tollgate: integer micro-USD everywhere inside, decimal strings at the edges.

One unit (1 micro-USD = 0.000001 USD) and one rule for turning a decimal string into it: the string
must be exact at that precision; anything finer is refused rather than rounded, so no price is ever
silently changed on the way in. Floats are refused outright.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000


def parse_micros(value: object, what: str = "amount") -> int:
    """``"0.15"`` → 150000. Raises ValueError naming ``what`` for floats, junk, negatives, sub-micro."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"{what} must be a decimal string such as \"0.15\", not a float")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a decimal string such as \"0.15\"")
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"{what} is not a decimal number: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{what} must be a finite, non-negative amount: {value!r}")
    micros = amount * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise ValueError(f"{what} has more than 6 decimal places: {value!r}")
    return int(micros)


def format_micros(micros: int) -> str:
    """150000 → ``"0.150000"`` (always 6 decimals: the API's money format)."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}{whole}.{frac:06d}"


def micros_from_wire(value: object, what: str, example: str) -> int:
    """A money field of a request body → micro-USD, for the management APIs' validators.

    Only a JSON string is money there: a JSON number may already have been rounded by some client's
    float, so it is refused rather than trusted. The error names the field and never echoes the value
    (``parse_micros``'s messages end with it; answers must not). ``example`` completes "a decimal
    string of …", e.g. ``'US dollars such as "20.00"'``.
    """
    if not isinstance(value, str):
        kind = "a JSON number" if isinstance(value, int | float) and not isinstance(value, bool) else "that"
        raise ValueError(f"{what} must be a decimal string of {example}, not {kind}")
    try:
        return parse_micros(value, what)
    except ValueError as exc:
        raise ValueError(str(exc).rsplit(": ", 1)[0]) from None

"""One admitted request's claim on its key's counters, from admission until it is settled.

The request flow tells the ticket what happened (``output_started``, ``usage``) and the response's
ASGI wrapper releases it exactly once, whichever way the request ended; ``settlement`` turns that
into the deltas that replace the reservation with the truth:

* usage reported (a Finish arrived, or the router's account of a stopped call with its prompt
  counted) → the real tokens and cost;
* nothing was generated (failed before output) → zero: the whole reservation is returned;
* output started but no final usage (the client went away, the stream broke) → the router's count of
  output tokens (its account of the stopped call, else the last delta); input tokens as the backend
  reported them, or the reserved bound where it has not said yet (OpenAI-compatible providers report
  input only at the end): what is unknown stays at its worst case, so budgets fail closed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from services.common.events.catalog import PriceEntry
from services.common.pricing import TokenCounts, cost_micros
from services.edge.admission.reservation import Reservation, usage_tokens, worst_case_cost
from tollgate.router.v1 import router_pb2


@dataclass
class Ticket:
    key_id: str
    reservation: Reservation
    price: PriceEntry | None
    account_id: str = ""
    lease_id: str = ""  # empty: the key has no concurrency limit
    bucket_second: int = -1  # the TPM bucket the reservation went into (-1: no TPM limit)
    window_start: int = -1  # the budget window it was charged to (-1: no budget)
    hold_id: str = ""  # the request id its prepaid hold is under ("" : no hold)
    headers: dict[str, str] = field(default_factory=dict)
    metered: bool = True  # False when admitted without Redis (outage policy): nothing to settle
    admitted_at: float = field(default_factory=time.monotonic)
    output_started: bool = False
    usage: router_pb2.Usage | None = None
    running: router_pb2.Usage | None = None  # the last delta's running usage (a stream cut short)
    released: bool = False

    def settlement(self) -> tuple[int, int]:
        """(token delta, cost delta) that turn the reservation into what the request really used."""
        if self.usage is not None:
            tokens = usage_tokens(self.usage)
            cost = cost_micros(self.price, tokens)
            return tokens.total - self.reservation.tokens, cost - self.reservation.cost_micros
        if not self.output_started:
            return -self.reservation.tokens, -self.reservation.cost_micros
        if self.running is None:
            return 0, 0
        input_tokens = self.running.input_tokens or self.reservation.input_tokens
        tokens = TokenCounts(input=input_tokens, output=self.running.output_tokens)
        cost = worst_case_cost(self.price, input_tokens, self.running.output_tokens)
        return tokens.total - self.reservation.tokens, cost - self.reservation.cost_micros

"""jobs.v1 — asynchronous work (Batch API lines, background requests) for the router's consumer group.

Keyed by account id so one account's jobs stay ordered. Carries a reference to the stored input
(file id + line), never the prompt itself: prompts are not stored in the log unless an account opts in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.common.events.base import Event, Id, NonNegative, UtcDatetime


class JobEventV1(Event):
    schema_: Literal["jobs.v1"] = Field(default="jobs.v1", alias="schema")
    job_id: Id
    kind: Literal["batch_line", "background"]
    batch_id: Id | None = None
    account_id: Id
    key_id: Id
    endpoint: Literal["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages"]
    model: str = Field(min_length=1, max_length=256)
    input_ref: str = Field(min_length=1, max_length=512, description="file id and line, e.g. file-abc#12")
    attempt: NonNegative = 0
    created_at: UtcDatetime
    deadline_at: UtcDatetime

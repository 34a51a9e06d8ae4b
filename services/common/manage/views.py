"""The error answer every management route may give, as a model so the OpenAPI document describes it.
It is the OpenAI error shape that ``TollgateError.to_openai`` renders; one definition keeps the schema
the same in every service's document, so the edge can merge them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorView(BaseModel):
    model_config = ConfigDict(frozen=True)

    error: ErrorDetail

"""Stripe's lists are read to their end, page after page (``has_more``, ``starting_after``): a
customer's objects past the first page are not dropped. Pages of 2 here stand in for Stripe's 100."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.errors import UpstreamError
from tests.billing.conftest import Manage
from tests.billing.stripe.conftest import subscribed_in_stripe


def ids(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(str(o["id"]) for o in objects)


@pytest.mark.parametrize("count", [2, 4, 5])  # one full page; two full pages; a last page of one
async def test_every_page_of_a_customers_subscriptions_is_read(paged_api: Manage, count: int) -> None:
    _, customer, created = await subscribed_in_stripe(paged_api, count)
    gateway = paged_api.deps.stripe.require()
    assert gateway.page_size == 2
    listed = await gateway.list_subscriptions(customer)
    assert ids(listed) == sorted(created) and len(listed) == count  # each once, none missing


async def test_every_page_of_a_customers_invoices_is_read(paged_api: Manage, billing_api: Manage) -> None:
    _, customer, _ = await subscribed_in_stripe(paged_api, 5)
    in_one_page = await billing_api.deps.stripe.require().list_invoices(customer)
    assert len(in_one_page) > 2  # more than one small page
    assert ids(await paged_api.deps.stripe.require().list_invoices(customer)) == ids(in_one_page)


class _Page:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def to_dict(self) -> dict[str, Any]:
        return self.answer


@pytest.mark.parametrize("data", [[{"id": "sub_same"}], []])  # a page that repeats; an empty one
async def test_a_list_that_does_not_advance_is_an_error_not_a_loop(billing_api: Manage, data: list[Any]) -> None:
    asked: list[dict[str, Any]] = []

    def stuck(params: dict[str, Any]) -> _Page:  # claims more every time, never moves on
        asked.append(params)
        return _Page({"object": "list", "data": data, "has_more": True})

    with pytest.raises(UpstreamError):
        await billing_api.deps.stripe.require()._list_all("subscriptions.list", stuck, {"customer": "cus_x"})
    assert len(asked) == (2 if data else 1) and asked[0] == {"customer": "cus_x", "limit": 100}

"""What a provider learns of a client's end user: a stable, per-account hash, never the id itself."""

from __future__ import annotations

from services.edge.end_user import end_user_id


def test_an_end_user_is_a_stable_per_account_hash() -> None:
    alice = end_user_id("acct_a", "alice")
    assert alice == end_user_id("acct_a", "alice") and alice.startswith("tg-") and len(alice) == 35
    assert alice != end_user_id("acct_b", "alice")  # two customers' "alice" are two people
    assert "alice" not in alice and "acct_a" not in alice
    assert end_user_id("acct_a", "b:c") != end_user_id("acct_a:b", "c")  # no ambiguous joins


def test_no_end_user_is_nothing_to_send() -> None:
    assert end_user_id("acct_a", None) == end_user_id("acct_a", "") == ""

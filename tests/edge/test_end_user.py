"""What a provider learns of a client's end user: a stable, per-account hash, never the id itself."""

from __future__ import annotations

from services.edge.end_user import end_user_id, prompt_cache_key_id


def test_an_end_user_is_a_stable_per_account_hash() -> None:
    alice = end_user_id("acct_a", "alice")
    assert alice == end_user_id("acct_a", "alice") and alice.startswith("tg-") and len(alice) == 35
    assert alice != end_user_id("acct_b", "alice")  # two customers' "alice" are two people
    assert "alice" not in alice and "acct_a" not in alice
    assert end_user_id("acct_a", "b:c") != end_user_id("acct_a:b", "c")  # no ambiguous joins


def test_no_end_user_is_nothing_to_send() -> None:
    assert end_user_id("acct_a", None) == end_user_id("acct_a", "") == ""


def test_a_prompt_cache_key_is_hashed_per_account_apart_from_end_users() -> None:
    key = prompt_cache_key_id("acct_a", "v1")
    assert key == prompt_cache_key_id("acct_a", "v1") and key.startswith("tg-") and len(key) == 35
    assert key != prompt_cache_key_id("acct_b", "v1") and key != end_user_id("acct_a", "v1")
    assert prompt_cache_key_id("acct_a", None) == ""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.datastructures import Headers

from services.common.api_keys import display_prefix, generate_key, hash_key
from services.common.errors import AuthenticationFailed, PermissionDenied
from services.common.events.keys import KeyEventV1
from services.edge.auth import KeyIndex, presented_key

SECRET = "s" * 40
EXAMPLE = Path(__file__).resolve().parents[2] / "services/common/events/examples/keys.v1/active_key.json"


def key_event(secret: str, **changes: object) -> KeyEventV1:
    base = KeyEventV1.from_bytes(EXAMPLE.read_bytes())
    return base.model_copy(update={"key_hash": hash_key(secret, SECRET), "prefix": display_prefix(secret), **changes})


def test_generated_keys_are_long_random_and_distinct() -> None:
    keys = {generate_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(k.startswith("tg-") and len(k) == 46 for k in keys)


def test_a_known_active_key_authenticates() -> None:
    secret = generate_key()
    index = KeyIndex(SECRET)
    index.apply("key_7f3a", key_event(secret))
    assert index.authenticate(secret).key_id == "key_7f3a"


@pytest.mark.parametrize(
    "changes",
    [{"status": "revoked"}, {"status": "disabled"}, {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}],
    ids=["revoked", "disabled", "expired"],
)
def test_unusable_keys_get_the_same_401_as_unknown_ones(changes: dict[str, object]) -> None:
    secret = generate_key()
    index = KeyIndex(SECRET)
    index.apply("key_7f3a", key_event(secret, **changes))
    with pytest.raises(AuthenticationFailed) as bad:
        index.authenticate(secret)
    with pytest.raises(AuthenticationFailed) as unknown:
        index.authenticate(generate_key())
    assert bad.value.message == unknown.value.message


def test_a_suspended_account_is_refused_with_its_reason() -> None:
    secret = generate_key()
    index = KeyIndex(SECRET)
    index.apply("key_7f3a", key_event(secret, account_status="suspended"))
    with pytest.raises(PermissionDenied, match="suspended"):
        index.authenticate(secret)


def test_a_rotated_key_forgets_the_old_hash_and_a_tombstone_forgets_the_key() -> None:
    old, new = generate_key(), generate_key()
    index = KeyIndex(SECRET)
    index.apply("key_7f3a", key_event(old))
    index.apply("key_7f3a", key_event(new, version=4))
    with pytest.raises(AuthenticationFailed):
        index.authenticate(old)
    assert index.authenticate(new).version == 4
    index.apply("key_7f3a", None)
    assert len(index) == 0


def test_a_hash_made_with_another_server_secret_never_matches() -> None:
    secret = generate_key()
    index = KeyIndex("another-server-secret-of-enough-length")
    index.apply("key_7f3a", key_event(secret))
    with pytest.raises(AuthenticationFailed):
        index.authenticate(secret)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": "Bearer tg-abc"}, "tg-abc"),
        ({"Authorization": "bearer  tg-abc "}, "tg-abc"),
        ({"x-api-key": "tg-abc"}, "tg-abc"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, None),
        ({"authorization": "Basic dXNlcjpwYXNz", "x-api-key": "tg-abc"}, "tg-abc"),  # a proxy's, not ours
        ({"authorization": "Bearer tg-abc", "x-api-key": "tg-other"}, "tg-abc"),
        ({}, None),
    ],
)
def test_key_is_taken_from_bearer_or_x_api_key(headers: dict[str, str], expected: str | None) -> None:
    assert presented_key(Headers(headers)) == expected

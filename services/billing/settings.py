from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_")

    http_port: int = Field(default=8093, ge=0, le=65535)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(
        default=50052, ge=0, le=65535, description="tollgate.manage.v1.ManagementService (the edge calls it)"
    )
    database_url: str = Field(
        default="postgresql://postgres:tollgate@127.0.0.1:5432/tollgate_billing",
        pattern=r"^postgres(ql)?://",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    key_hash_secret: SecretStr = Field(
        min_length=32, validation_alias="TOLLGATE_KEY_HASH_SECRET",
        description="server secret of the keyed hash of API keys; the same value in billing and edge",
    )
    outbox_interval_seconds: float = Field(
        default=1.0, gt=0, le=60,
        description="how often keys.v1's outbox is swept for changes not yet published (Kafka was down)",
    )
    publish_wait_seconds: float = Field(
        default=2.0, ge=0, le=30,
        description="how long a management request waits for its keys.v1 events before answering anyway",
    )
    # --- statements (services/billing/statements) ---
    metering_address: str = Field(
        default="127.0.0.1:50053", min_length=1,
        description="metering's tollgate.manage.v1.ManagementService: statements read its usage API",
    )
    metering_timeout_seconds: float = Field(default=15.0, gt=0, le=120, description="one usage API call")
    statements_close_interval_seconds: float = Field(
        default=3600.0, gt=0, le=86_400,
        description="how often the close job looks for finished months whose grace has passed",
    )
    statements_close_grace_hours: float = Field(
        default=24.0, ge=0, le=24 * 31,
        description="a month closes only this long after its end, once metering has caught up with its usage",
    )
    # --- the credit ledger and the prepaid wallets in Redis (services/billing/ledger) ---
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", pattern=r"^rediss?://",
        description="the Redis the edges admit against: billing writes prepaid balances there",
    )
    redis_prefix: str = Field(
        default="tg", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="must equal the edges' EDGE_REDIS_PREFIX",
    )
    wallet_mirror_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often balances changed in the ledger are written to Redis"
    )
    wallet_full_sync_seconds: float = Field(
        default=60.0, gt=0, le=86400,
        description="how often every prepaid balance is rewritten and every hold swept (Redis lost data)",
    )
    hold_ttl_seconds: float = Field(
        default=3600.0, ge=60, le=7 * 86400,
        description="a hold with no charge this long (its edge died before recording usage) is let go",
    )
    price_wait_seconds: float = Field(
        default=60.0, ge=0, le=3600,
        description="how long an event naming an unknown price version is retried before it is dead-lettered",
    )
    grant_expiry_interval_seconds: float = Field(
        default=60.0, gt=0, le=86400, description="how often expired grants' unused credit is withdrawn"
    )
    # --- Stripe (services/billing/stripe): no API key = Stripe features answer 503, the rest works ---
    stripe_api_key: SecretStr | None = Field(
        default=None, description="Stripe secret key (sk_live_... / sk_test_...); unset disables Stripe"
    )
    stripe_api_base: str = Field(
        default="https://api.stripe.com", pattern=r"^https?://",
        description="Stripe's API address; make run and tests point it at localstripe",
    )
    stripe_webhook_secret: SecretStr | None = Field(
        default=None,
        description="the webhook endpoint's signing secret (whsec_...); unset refuses every event",
    )
    stripe_webhook_tolerance_seconds: int = Field(
        default=300, ge=1, le=3600, description="oldest signature timestamp accepted (replay protection)"
    )
    stripe_currency: str = Field(default="usd", pattern=r"^usd$", description="the one currency charged")
    stripe_past_due_holds: bool = Field(
        default=False,
        description="suspend keys while a subscription is past_due"
        " (default: keep serving during Stripe's retries)",
    )
    stripe_timeout_seconds: float = Field(default=20.0, gt=0, le=120, description="one Stripe API call")
    reconcile_interval_seconds: float = Field(
        default=300.0, ge=0, le=86_400,
        description="how often Stripe is reconciled with billing's tables (0 = only on demand)",
    )
    reconcile_lookback_hours: int = Field(
        default=72, ge=1, le=24 * 90,
        description="uncredited PaymentIntents younger than this are re-checked by reconciliation",
    )

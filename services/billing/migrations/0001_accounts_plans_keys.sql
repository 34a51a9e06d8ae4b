-- Billing's own database. Money is BIGINT micro-USD (1 USD = 1,000,000), never float (promise 3).

CREATE TABLE accounts (
    id          text PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    parent_id   text REFERENCES accounts (id),
    billing     text NOT NULL DEFAULT 'invoice' CHECK (billing IN ('prepaid', 'subscription', 'invoice')),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    currency    char(3) NOT NULL DEFAULT 'USD',
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_parent_idx ON accounts (parent_id);

CREATE TABLE plans (
    id                    text PRIMARY KEY,
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    requests_per_minute   integer CHECK (requests_per_minute >= 0),
    tokens_per_minute     integer CHECK (tokens_per_minute >= 0),
    max_concurrency       integer CHECK (max_concurrency >= 0),
    budget_micros         bigint CHECK (budget_micros >= 0),
    budget_window_seconds integer CHECK (budget_window_seconds > 0),
    allowed_models        text[],
    expires_at            timestamptz,
    version               bigint NOT NULL DEFAULT 1,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK ((budget_micros IS NULL) = (budget_window_seconds IS NULL))
);

-- The secret is never stored: only HMAC-SHA256(server secret, key) and a short display prefix.
CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    account_id    text NOT NULL REFERENCES accounts (id),
    plan_id       text NOT NULL REFERENCES plans (id),
    name          text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    key_hash      bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    prefix        text NOT NULL,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'revoked')),
    overrides     jsonb NOT NULL DEFAULT '{}'::jsonb,
    expires_at    timestamptz,
    last_used_at  timestamptz,
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_account_idx ON api_keys (account_id);

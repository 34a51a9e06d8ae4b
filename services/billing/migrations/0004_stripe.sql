-- Stripe: customers, plans linked to Stripe Plans, subscriptions, the PaymentIntents we created, the
-- webhook event log (exactly-once processing) and billing holds (keys suspended for non-payment).
--
-- Stripe is the source of truth for payment state; these tables are our copy of what we last learned
-- (by webhook, by re-retrieving the object, or by reconciliation), plus what only we know: whether a
-- succeeded PaymentIntent has been credited to the ledger, and which events we already processed.

ALTER TABLE accounts
    ADD COLUMN stripe_customer_id text UNIQUE,
    -- NULL = no hold; otherwise why the account's keys are suspended ('subscription_canceled', ...).
    -- Kept apart from accounts.status so that an operator's suspension and Stripe's never undo each other.
    ADD COLUMN billing_hold text CHECK (billing_hold IS NULL OR length(billing_hold) BETWEEN 1 AND 100);

ALTER TABLE plans ADD COLUMN stripe_plan_id text;

CREATE TABLE stripe_subscriptions (
    id                    text PRIMARY KEY,                       -- sub_...
    account_id            text NOT NULL REFERENCES accounts (id),
    plan_id               text REFERENCES plans (id),
    stripe_plan_id        text,
    status                text NOT NULL,                          -- Stripe's status, as Stripe says it
    current_period_end    timestamptz,
    cancel_at_period_end  boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    synced_at             timestamptz NOT NULL DEFAULT now()      -- when we last applied Stripe's state
);
CREATE INDEX stripe_subscriptions_account_idx ON stripe_subscriptions (account_id);

CREATE TABLE stripe_payment_intents (
    id              text PRIMARY KEY,                             -- pi_...
    account_id      text NOT NULL REFERENCES accounts (id),
    amount_cents    bigint NOT NULL CHECK (amount_cents > 0),
    currency        char(3) NOT NULL DEFAULT 'usd',
    status          text NOT NULL,
    credited        boolean NOT NULL DEFAULT false,               -- posted to the ledger ("topup:<id>")
    request_id      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- what reconciliation re-checks: only what was never credited and may still succeed
CREATE INDEX stripe_payment_intents_open_idx ON stripe_payment_intents (created_at)
    WHERE NOT credited AND status NOT IN ('canceled');

-- One row per Stripe event id: a redelivered event finds its row processed and does nothing. A row
-- without processed_at is an event whose processing failed (Stripe retries it).
CREATE TABLE stripe_webhook_events (
    id            text PRIMARY KEY,                               -- evt_...
    type          text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    outcome       text
);

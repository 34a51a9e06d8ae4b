-- Closed monthly statements (services/billing/statements): one row per (account, calendar month UTC),
-- written once by the close job and served as stored ever after. Open periods are never stored: they
-- are computed live from metering's usage API and the credit ledger.
--
-- The primary key makes closing idempotent: the job inserts with ON CONFLICT DO NOTHING, so two runs
-- (two replicas, or the nightly job and an operator's POST /v1/manage/billing/close) close a statement
-- once. Rows are never updated or deleted (a trigger refuses it).

CREATE TABLE statements (
    account_id         text NOT NULL REFERENCES accounts (id),
    period             text NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),   -- "2026-11"
    period_start       timestamptz NOT NULL,
    period_end         timestamptz NOT NULL CHECK (period_end > period_start),
    statement          jsonb NOT NULL,            -- the statement exactly as the API serves it
    usage_cost_micros  bigint NOT NULL,           -- the period's usage cost + late usage billed on it
    usage_requests     bigint NOT NULL,
    usage_since        timestamptz NOT NULL,      -- usage_through covers [usage_since, period_end)
    usage_through      jsonb NOT NULL,            -- usage billed on this and every earlier statement
    opening_micros     bigint NOT NULL,
    closing_micros     bigint NOT NULL,
    ledger_seq         bigint NOT NULL CHECK (ledger_seq >= 0),  -- highest ledger seq included
    closed_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, period),
    UNIQUE (account_id, period_start)
);

CREATE FUNCTION statements_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a closed statement never changes: % on statements refused', TG_OP;
END $$;

CREATE TRIGGER statements_immutable BEFORE UPDATE OR DELETE ON statements
    FOR EACH ROW EXECUTE FUNCTION statements_immutable();

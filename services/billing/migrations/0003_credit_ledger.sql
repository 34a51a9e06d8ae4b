-- The credit ledger: double entry, integer micro-USD, append-only, every transaction idempotent.
--
-- A transaction moves money between books: the customer's wallet ('wallet:<account id>') and one
-- platform book ('stripe' cash received, 'revenue' usage sold, 'grants' promotional credit,
-- 'adjustments' operator corrections). Its postings sum to zero (checked at commit by a deferred
-- constraint trigger), so the wallet's balance is exactly what moved in and out of it.
--
-- ledger_balances is the wallet's running total, updated in the same transaction under a row lock:
-- the lock serialises one account's transactions, gives them a gap-free per-account order (seq), and
-- makes "balance = Σ amount_micros of the account's transactions" an invariant of every commit.

CREATE TABLE ledger_balances (
    account_id        text PRIMARY KEY REFERENCES accounts (id),
    currency          char(3) NOT NULL DEFAULT 'USD',
    balance_micros    bigint NOT NULL DEFAULT 0,
    version           bigint NOT NULL DEFAULT 0,   -- seq of the account's latest transaction
    mirrored_version  bigint NOT NULL DEFAULT 0,   -- latest version written to Redis for the edges
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_balances_unmirrored_idx ON ledger_balances (account_id) WHERE version > mirrored_version;

CREATE TABLE ledger_transactions (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id            text NOT NULL REFERENCES accounts (id),
    seq                   bigint NOT NULL CHECK (seq > 0),
    kind                  text NOT NULL CHECK (kind IN ('topup', 'grant', 'charge', 'refund', 'adjustment', 'expiry')),
    amount_micros         bigint NOT NULL CHECK (amount_micros <> 0),  -- signed effect on the balance
    balance_after_micros  bigint NOT NULL,
    idempotency_key       text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 300),
    reason                text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    reference             text,                    -- the request id of a charge, the Stripe object id
    expires_at            timestamptz,             -- grants: unused credit is withdrawn after this
    occurred_at           timestamptz NOT NULL,    -- when it happened (a charge: its request's start)
    created_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, seq),
    CHECK (kind IN ('topup', 'grant') OR expires_at IS NULL),
    CHECK (kind NOT IN ('topup', 'grant') OR amount_micros > 0),
    CHECK (kind NOT IN ('charge', 'refund', 'expiry') OR amount_micros < 0)
);
CREATE INDEX ledger_transactions_period_idx ON ledger_transactions (account_id, occurred_at);

CREATE TABLE ledger_postings (
    transaction_id  bigint NOT NULL REFERENCES ledger_transactions (id),
    book            text NOT NULL,
    amount_micros   bigint NOT NULL,
    PRIMARY KEY (transaction_id, book)
);
CREATE INDEX ledger_postings_book_idx ON ledger_postings (book);

-- What is left of each expiring grant: charges draw on the soonest-expiring credit first, and what is
-- left at expiry is withdrawn by an 'expiry' transaction (idempotency key 'expiry:<grant id>').
CREATE TABLE ledger_grants (
    transaction_id    bigint PRIMARY KEY REFERENCES ledger_transactions (id),
    account_id        text NOT NULL REFERENCES accounts (id),
    remaining_micros  bigint NOT NULL CHECK (remaining_micros >= 0),
    expires_at        timestamptz NOT NULL,
    expired           boolean NOT NULL DEFAULT false
);
CREATE INDEX ledger_grants_open_idx ON ledger_grants (account_id, expires_at) WHERE remaining_micros > 0 AND NOT expired;
CREATE INDEX ledger_grants_due_idx ON ledger_grants (expires_at) WHERE NOT expired;

CREATE FUNCTION ledger_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
    wallet bigint;
    expected bigint;
BEGIN
    SELECT coalesce(sum(p.amount_micros), 0),
           coalesce(sum(p.amount_micros) FILTER (WHERE p.book = 'wallet:' || t.account_id), 0),
           t.amount_micros
      INTO total, wallet, expected
      FROM ledger_transactions t LEFT JOIN ledger_postings p ON p.transaction_id = t.id
     WHERE t.id = NEW.id
     GROUP BY t.amount_micros;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance (postings sum to %)', NEW.id, total;
    END IF;
    IF wallet <> expected THEN
        RAISE EXCEPTION 'ledger transaction % moves % on the wallet but says %', NEW.id, wallet, expected;
    END IF;
    RETURN NULL;
END $$;

-- Checked at commit, once every posting of the transaction is in.
CREATE CONSTRAINT TRIGGER ledger_transactions_balanced
    AFTER INSERT ON ledger_transactions DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_transaction_balanced();

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;

CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_postings_append_only BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

-- The management API: key kinds, rotation lineage, plans owned by an account, and keys.v1's outbox.
--
-- The outbox needs no table of its own: every transaction that changes what a key's keys.v1 event says
-- (the key, its plan, its account or an ancestor account) sets that key's state_version to a fresh value
-- of key_state_seq in the same transaction. A row with state_version > published_version is therefore
-- "committed but not yet on Kafka"; the publisher sends it with version = state_version and then raises
-- published_version. One global sequence makes every new version larger than every older one, whatever
-- row changed, so an edge never ignores a change as "older than what I hold".

ALTER TABLE api_keys
    ADD COLUMN kind text NOT NULL DEFAULT 'inference' CHECK (kind IN ('inference', 'management')),
    ADD COLUMN rotated_from text REFERENCES api_keys (id);

-- A plan owned by an account is visible to that account's tree; NULL = a global plan (operator's).
ALTER TABLE plans ADD COLUMN account_id text REFERENCES accounts (id);
CREATE INDEX plans_account_idx ON plans (account_id) WHERE account_id IS NOT NULL;

CREATE SEQUENCE key_state_seq AS bigint;

-- Events published before this migration carried version = key + plan + account row versions; start
-- above every one of them, or edges would ignore the first events published after it.
SELECT setval(
    'key_state_seq',
    greatest(1, (SELECT coalesce(max(k.version + p.version + a.version), 0)
                 FROM api_keys k JOIN plans p ON p.id = k.plan_id JOIN accounts a ON a.id = k.account_id)),
    true
);

ALTER TABLE api_keys ADD COLUMN state_version bigint;
UPDATE api_keys SET state_version = nextval('key_state_seq');
ALTER TABLE api_keys
    ALTER COLUMN state_version SET NOT NULL,
    ALTER COLUMN state_version SET DEFAULT nextval('key_state_seq'),
    ADD COLUMN published_version bigint NOT NULL DEFAULT 0;
ALTER SEQUENCE key_state_seq OWNED BY api_keys.state_version;

-- What the publisher scans: only the (few) rows not yet on Kafka.
CREATE INDEX api_keys_unpublished_idx ON api_keys (state_version) WHERE state_version > published_version;
CREATE INDEX api_keys_plan_idx ON api_keys (plan_id);

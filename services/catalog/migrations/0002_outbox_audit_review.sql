-- The full data model, catalog.v1's outbox, the audit trail, the review queue and the sync log.
--
-- Outbox: every change sets the row's state_version to a fresh value of catalog_version_seq in the
-- same transaction; a row with state_version > published_version is "committed but not yet on
-- Kafka". The publisher sends the row's current state with version = state_version and then raises
-- published_version. One global sequence makes every new version larger than every older one, so a
-- consumer's snapshot (which drops a record older than what it holds) never ignores a change.

CREATE SEQUENCE catalog_version_seq AS bigint;

-- Events published before this migration carried the per-row ``version``; start above all of them.
SELECT setval('catalog_version_seq', greatest(1, (
    SELECT coalesce(max(v), 0) FROM (
        SELECT max(version) AS v FROM models
        UNION ALL SELECT max(version) FROM deployments
        UNION ALL SELECT max(version) FROM aliases) AS versions)), true);

-- models: the rest of the description; ``enabled = false`` keeps a model (and its price history)
-- without serving it (published as deleted, so edges and routers drop it).
ALTER TABLE models
    ADD COLUMN tags               text[] NOT NULL DEFAULT '{}',
    ADD COLUMN input_modalities   text[] NOT NULL DEFAULT '{text}',
    ADD COLUMN output_modalities  text[] NOT NULL DEFAULT '{text}',
    ADD COLUMN enabled            boolean NOT NULL DEFAULT true,
    ADD COLUMN created_at         timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT models_sunset_not_before_deprecation
        CHECK (sunset_at IS NULL OR deprecated_at IS NULL OR sunset_at >= deprecated_at),
    ADD CONSTRAINT models_not_own_replacement CHECK (replacement IS DISTINCT FROM id);

-- deployments: placement, and a soft delete (a deleted row is published as deleted, then kept)
ALTER TABLE deployments
    ADD COLUMN region      text,
    ADD COLUMN tier        text,
    ADD COLUMN deleted     boolean NOT NULL DEFAULT false,
    ADD COLUMN created_at  timestamptz NOT NULL DEFAULT now();

ALTER TABLE aliases
    ADD COLUMN deleted     boolean NOT NULL DEFAULT false,
    ADD COLUMN created_at  timestamptz NOT NULL DEFAULT now();

-- prices: the batch discount, and who made the version (seed, api, sync:<source>, review)
ALTER TABLE prices
    ADD COLUMN batch_discount_bps  integer NOT NULL DEFAULT 0
        CHECK (batch_discount_bps BETWEEN 0 AND 10000),
    ADD COLUMN source              text NOT NULL DEFAULT 'seed';

-- the outbox columns; rows already here are published once more (same content, a newer version)
ALTER TABLE models ADD COLUMN state_version bigint;
ALTER TABLE deployments ADD COLUMN state_version bigint;
ALTER TABLE aliases ADD COLUMN state_version bigint;
ALTER TABLE prices ADD COLUMN state_version bigint;
UPDATE models SET state_version = nextval('catalog_version_seq');
UPDATE deployments SET state_version = nextval('catalog_version_seq');
UPDATE aliases SET state_version = nextval('catalog_version_seq');
UPDATE prices SET state_version = nextval('catalog_version_seq');
ALTER TABLE models
    DROP COLUMN version,
    ALTER COLUMN state_version SET NOT NULL,
    ALTER COLUMN state_version SET DEFAULT nextval('catalog_version_seq'),
    ADD COLUMN published_version bigint NOT NULL DEFAULT 0;
ALTER TABLE deployments
    DROP COLUMN version,
    ALTER COLUMN state_version SET NOT NULL,
    ALTER COLUMN state_version SET DEFAULT nextval('catalog_version_seq'),
    ADD COLUMN published_version bigint NOT NULL DEFAULT 0;
ALTER TABLE aliases
    DROP COLUMN version,
    ALTER COLUMN state_version SET NOT NULL,
    ALTER COLUMN state_version SET DEFAULT nextval('catalog_version_seq'),
    ADD COLUMN published_version bigint NOT NULL DEFAULT 0;
ALTER TABLE prices
    ALTER COLUMN state_version SET NOT NULL,
    ALTER COLUMN state_version SET DEFAULT nextval('catalog_version_seq'),
    ADD COLUMN published_version bigint NOT NULL DEFAULT 0;

CREATE INDEX models_unpublished_idx ON models (state_version) WHERE state_version > published_version;
CREATE INDEX deployments_unpublished_idx ON deployments (state_version)
    WHERE state_version > published_version;
CREATE INDEX aliases_unpublished_idx ON aliases (state_version) WHERE state_version > published_version;
CREATE INDEX prices_unpublished_idx ON prices (state_version) WHERE state_version > published_version;
CREATE INDEX deployments_model_idx ON deployments (model_id);
CREATE INDEX aliases_target_idx ON aliases (target);

-- A price version is immutable: only the publisher's bookkeeping may change on its row, and it is
-- never deleted (usage carries its id and is re-priced from it on every replay).
CREATE FUNCTION prices_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'price version % is never deleted', OLD.id;
    END IF;
    IF (NEW.id, NEW.model_id, NEW.effective_from, NEW.input_micros_per_mtok,
        NEW.cached_input_micros_per_mtok, NEW.cache_write_micros_per_mtok, NEW.output_micros_per_mtok,
        NEW.batch_discount_bps, NEW.source, NEW.state_version)
       IS DISTINCT FROM
       (OLD.id, OLD.model_id, OLD.effective_from, OLD.input_micros_per_mtok,
        OLD.cached_input_micros_per_mtok, OLD.cache_write_micros_per_mtok, OLD.output_micros_per_mtok,
        OLD.batch_discount_bps, OLD.source, OLD.state_version) THEN
        RAISE EXCEPTION 'price version % is immutable; add a new version instead', OLD.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER prices_immutable BEFORE UPDATE OR DELETE ON prices
    FOR EACH ROW EXECUTE FUNCTION prices_immutable();

-- Every applied change: who, what, when, the entity before and after, and the version it went out at.
CREATE TABLE catalog_audit (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,              -- admin | <account>/<key> | seed | sync:<source>
    request_id   text NOT NULL DEFAULT '',
    action       text NOT NULL,              -- create | update | delete | held | approved | rejected
    entity_kind  text NOT NULL,              -- model | deployment | price | alias | pending_change
    entity_id    text NOT NULL,
    version      bigint,                     -- the catalog.v1 version of the change (NULL: not published)
    before       jsonb,
    after        jsonb,
    note         text NOT NULL DEFAULT ''
);
CREATE INDEX catalog_audit_entity_idx ON catalog_audit (entity_kind, entity_id, id);

CREATE FUNCTION catalog_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'catalog_audit is append-only';
END $$;
CREATE TRIGGER catalog_audit_append_only BEFORE UPDATE OR DELETE ON catalog_audit
    FOR EACH ROW EXECUTE FUNCTION catalog_audit_append_only();

-- Price changes a sync found suspicious (beyond the change factor, or zero for a paid model): held
-- here, not applied, until an operator approves (→ a new price version) or rejects them. One open
-- change per (source, model): a later sync updates the proposal instead of queueing another.
CREATE TABLE pending_changes (
    id                text PRIMARY KEY,
    source            text NOT NULL,
    kind              text NOT NULL DEFAULT 'price' CHECK (kind IN ('price')),
    model_id          text NOT NULL REFERENCES models (id),
    reasons           text[] NOT NULL,
    current_price     jsonb,
    proposed_price    jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    decided_at        timestamptz,
    decided_by        text,
    applied_price_id  text REFERENCES prices (id)
);
CREATE UNIQUE INDEX pending_changes_open_idx ON pending_changes (source, kind, model_id)
    WHERE status = 'pending';

-- What each sync run did, or why it did nothing (the report it answered).
CREATE TABLE sync_runs (
    id           bigserial PRIMARY KEY,
    source       text NOT NULL,
    trigger      text NOT NULL,              -- schedule | api | cli
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL CHECK (status IN ('applied', 'held', 'unchanged', 'failed', 'dry_run')),
    report       jsonb NOT NULL
);
CREATE INDEX sync_runs_source_idx ON sync_runs (source, id);

-- Cost, and the per-minute / hour / day rollups.
--
-- cost_micros: integer micro-USD, computed once by the consumer with services/common/pricing.py at the
-- event's price_version (0 when the model has no price). Never recomputed by a query.
--
-- The rollups are aggregate PROJECTIONS of usage_raw, not separate tables fed by materialized views: a
-- projection is stored inside each data part and written in the same atomic part commit as the raw rows,
-- so a rollup can never be ahead of, behind, or double the raw rows it summarises — not even when the
-- process is killed in the middle of an insert (a materialized view's target is a second table, written
-- in a second, separate step). Each has the table's PARTITION BY (month) and TTL (400 days); its ORDER BY
-- is its GROUP BY key. Queries that group by toStartOfMinute/Hour/Day(started_at) (and filter on the same
-- expression) are answered from the smallest projection that can answer them; any other query reads the
-- raw rows, with the same result. docs/metering.md has the measurements behind this choice.
--
-- The consumer inserts only request ids not already stored (the writer's dedupe step), which is what keeps
-- the projections exact. ReplacingMergeTree stays as a second net; 'rebuild' recomputes a part's
-- projections from its rows after a merge that dropped a duplicate, so even then they converge.
ALTER TABLE usage_raw ADD COLUMN IF NOT EXISTS cost_micros UInt64 AFTER attempts;

ALTER TABLE usage_raw MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE usage_raw ADD PROJECTION IF NOT EXISTS usage_by_minute
(
    SELECT
        account_id, key_id, model_served, toStartOfMinute(started_at),
        count(), countIf(status = 'error'),
        sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens), sum(output_tokens),
        sum(reasoning_tokens), sum(cost_micros)
    GROUP BY account_id, key_id, model_served, toStartOfMinute(started_at)
);

ALTER TABLE usage_raw ADD PROJECTION IF NOT EXISTS usage_by_hour
(
    SELECT
        account_id, key_id, model_served, toStartOfHour(started_at),
        count(), countIf(status = 'error'),
        sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens), sum(output_tokens),
        sum(reasoning_tokens), sum(cost_micros)
    GROUP BY account_id, key_id, model_served, toStartOfHour(started_at)
);

ALTER TABLE usage_raw ADD PROJECTION IF NOT EXISTS usage_by_day
(
    SELECT
        account_id, key_id, model_served, toStartOfDay(started_at),
        count(), countIf(status = 'error'),
        sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens), sum(output_tokens),
        sum(reasoning_tokens), sum(cost_micros)
    GROUP BY account_id, key_id, model_served, toStartOfDay(started_at)
);

-- Parts written before this migration (there are none: usage.v1 had no producer yet) get their
-- projections built too, so no query ever falls back to raw rows for old data.
ALTER TABLE usage_raw MATERIALIZE PROJECTION usage_by_minute SETTINGS mutations_sync = 1;
ALTER TABLE usage_raw MATERIALIZE PROJECTION usage_by_hour SETTINGS mutations_sync = 1;
ALTER TABLE usage_raw MATERIALIZE PROJECTION usage_by_day SETTINGS mutations_sync = 1

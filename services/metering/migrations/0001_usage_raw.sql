-- One row per request (usage.v1). ReplacingMergeTree on the full sorting key makes a redelivered or
-- replayed event (same account, start time and request id) collapse into one row; queries that need
-- exact totals read with FINAL (or group by request_id) until background merges have run.
CREATE TABLE IF NOT EXISTS usage_raw
(
    request_id          String,
    account_id          String,
    key_id              String,
    api                 LowCardinality(String),
    model_requested     LowCardinality(String),
    model_served        LowCardinality(String),
    deployment_id       String,
    provider            LowCardinality(String),
    price_version       String,
    input_tokens        UInt64,
    cached_input_tokens UInt64,
    cache_write_tokens  UInt64,
    output_tokens       UInt64,
    reasoning_tokens    UInt64,
    status              LowCardinality(String),
    error_type          String,
    streamed            Bool,
    batch               Bool,
    started_at          DateTime64(3, 'UTC'),
    ttft_ms             Nullable(UInt32),
    duration_ms         UInt32,
    edge_id             String,
    attempts            UInt8,
    ingested_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(started_at)
ORDER BY (account_id, started_at, request_id)
TTL toDateTime(started_at) + INTERVAL 400 DAY

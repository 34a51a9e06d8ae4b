-- Catalog's own database. Prices are BIGINT micro-USD per 1M tokens: exact for any public price
-- quoted to 6 decimals per 1M tokens. A price is never edited: a change is a new version row.

CREATE TABLE models (
    id                 text PRIMARY KEY,
    display_name       text NOT NULL,
    description        text NOT NULL DEFAULT '',
    category           text NOT NULL DEFAULT 'chat',
    context_length     integer NOT NULL CHECK (context_length > 0),
    max_output_tokens  integer NOT NULL CHECK (max_output_tokens > 0),
    capabilities       text[] NOT NULL DEFAULT '{}',
    chat_template      text,
    deprecated_at      timestamptz,
    sunset_at          timestamptz,
    replacement        text REFERENCES models (id),
    version            bigint NOT NULL DEFAULT 1,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deployments (
    id               text PRIMARY KEY,
    model_id         text NOT NULL REFERENCES models (id),
    backend          text NOT NULL CHECK (backend IN ('triton', 'openai', 'anthropic')),
    endpoint         text NOT NULL,
    upstream_model   text NOT NULL,
    weight           integer NOT NULL DEFAULT 1 CHECK (weight >= 0),
    fallback         text[] NOT NULL DEFAULT '{}',
    credentials_env  text,
    version          bigint NOT NULL DEFAULT 1,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE prices (
    id                            text PRIMARY KEY,  -- the price version id carried on usage events
    model_id                      text NOT NULL REFERENCES models (id),
    effective_from                timestamptz NOT NULL,
    input_micros_per_mtok         bigint NOT NULL CHECK (input_micros_per_mtok >= 0),
    cached_input_micros_per_mtok  bigint NOT NULL CHECK (cached_input_micros_per_mtok >= 0),
    cache_write_micros_per_mtok   bigint NOT NULL CHECK (cache_write_micros_per_mtok >= 0),
    output_micros_per_mtok        bigint NOT NULL CHECK (output_micros_per_mtok >= 0),
    created_at                    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_id, effective_from)
);

CREATE TABLE aliases (
    id          text PRIMARY KEY,
    target      text NOT NULL REFERENCES models (id),
    version     bigint NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

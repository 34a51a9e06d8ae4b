-- deployments: the API features an OpenAI-compatible server takes beyond OpenAI's common subset
-- (services/router/backends/openai_compat.py). NULL: decided by the endpoint (OpenAI's own API gets
-- max_completion_tokens and prompt_cache_key, any other server none); a list: exactly those.

ALTER TABLE deployments
    ADD COLUMN features text[];

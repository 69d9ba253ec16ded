-- Gateway rate limits (issue 5): rate bounds all calls through an integration
-- (protecting the upstream's own quota), caller_rate the calls of each token
-- or API key through it. Empty: no limit. Form: N/s, N/min, N/h (see ratelimit).
ALTER TABLE integrations ADD COLUMN rate TEXT NOT NULL DEFAULT '';
ALTER TABLE integrations ADD COLUMN caller_rate TEXT NOT NULL DEFAULT '';

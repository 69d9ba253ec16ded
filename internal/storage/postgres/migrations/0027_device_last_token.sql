-- devices.last_token_at: see the SQLite migration of the same number.
ALTER TABLE devices ADD COLUMN last_token_at BIGINT NOT NULL DEFAULT 0;

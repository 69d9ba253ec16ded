-- api_keys.disabled_at: when the key was suspended (keyward key update
-- --disable), in unix nanoseconds; 0 while it is enabled. A disabled key is
-- refused like a revoked one until it is enabled again.
ALTER TABLE api_keys ADD COLUMN disabled_at INTEGER NOT NULL DEFAULT 0;

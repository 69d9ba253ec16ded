-- devices.last_token_at: when the device last got a token (unix
-- nanoseconds, 0: never), written in the token's own transaction at most
-- once a minute, for the inventory's "unused for" (keyward inventory
-- --kind device).
ALTER TABLE devices ADD COLUMN last_token_at INTEGER NOT NULL DEFAULT 0;

-- tokens: access tokens, stored as an HMAC of the token (never the token).
-- parent is the accessor of the token that created this one; revoking a
-- token revokes its descendants. Times are unix nanoseconds; 0 = never.
CREATE TABLE tokens (
	hash           BLOB PRIMARY KEY,
	accessor       TEXT NOT NULL UNIQUE,
	parent         TEXT NOT NULL,
	principal      TEXT NOT NULL,
	auth_method    TEXT NOT NULL,
	policies       TEXT NOT NULL,
	bound_envs     TEXT NOT NULL,
	bound_cidrs    TEXT NOT NULL,
	meta           TEXT NOT NULL,
	ttl            INTEGER NOT NULL,
	max_uses       INTEGER NOT NULL,
	uses           INTEGER NOT NULL,
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL,
	max_expires_at INTEGER NOT NULL,
	revoked_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX tokens_parent ON tokens (parent);
CREATE INDEX tokens_expires ON tokens (expires_at);

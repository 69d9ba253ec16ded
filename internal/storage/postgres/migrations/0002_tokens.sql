-- tokens: access tokens, stored as an HMAC of the token (never the token).
-- parent is the accessor of the token that created this one; revoking a
-- token revokes its descendants. Times are unix nanoseconds; 0 = never.
CREATE TABLE tokens (
	hash           BYTEA PRIMARY KEY,
	accessor       TEXT NOT NULL UNIQUE,
	parent         TEXT NOT NULL,
	principal      TEXT NOT NULL,
	auth_method    TEXT NOT NULL,
	policies       TEXT NOT NULL,
	bound_envs     TEXT NOT NULL,
	bound_cidrs    TEXT NOT NULL,
	meta           TEXT NOT NULL,
	ttl            BIGINT NOT NULL,
	max_uses       BIGINT NOT NULL,
	uses           BIGINT NOT NULL,
	created_at     BIGINT NOT NULL,
	expires_at     BIGINT NOT NULL,
	max_expires_at BIGINT NOT NULL,
	revoked_at     BIGINT NOT NULL
);
CREATE INDEX tokens_parent ON tokens (parent);
CREATE INDEX tokens_expires ON tokens (expires_at);

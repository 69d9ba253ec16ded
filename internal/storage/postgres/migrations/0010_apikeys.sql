-- api_keys: client API keys (kwk_), stored as an HMAC of the key (never the
-- key). Times are unix nanoseconds; 0 = never. revoked_at may lie in the
-- future: a rotated key stays valid until then (its grace period).
-- counter_id names the row that counts the key's quota and rate: its own id,
-- or its successor's once rotated, so a key and its successor share one
-- budget. remaining is decremented in place (UPDATE ... WHERE remaining > 0),
-- which is what keeps concurrent callers from overshooting a quota.
-- last_used_at/addr are written in batches, at most once per key per flush.
CREATE TABLE api_keys (
	hash           BYTEA PRIMARY KEY,
	id             TEXT NOT NULL UNIQUE,
	project        TEXT NOT NULL,
	env            TEXT NOT NULL,
	kind           TEXT NOT NULL,
	name           TEXT NOT NULL,
	owner          TEXT NOT NULL,
	scopes         TEXT NOT NULL,
	meta           TEXT NOT NULL,
	cidrs          TEXT NOT NULL,
	created_by     TEXT NOT NULL,
	created_at     BIGINT NOT NULL,
	expires_at     BIGINT NOT NULL,
	rate_count     BIGINT NOT NULL,
	rate_period    BIGINT NOT NULL,
	rate_burst     BIGINT NOT NULL,
	quota          BIGINT NOT NULL,
	remaining      BIGINT NOT NULL,
	refill         TEXT NOT NULL,
	refill_amount  BIGINT NOT NULL,
	refilled_at    BIGINT NOT NULL,
	counter_id     TEXT NOT NULL,
	revoked_at     BIGINT NOT NULL,
	rotated_from   TEXT NOT NULL,
	rotated_to     TEXT NOT NULL,
	last_used_at   BIGINT NOT NULL,
	last_used_addr TEXT NOT NULL
);
CREATE INDEX api_keys_env ON api_keys (project, env, id);
CREATE INDEX api_keys_counter ON api_keys (counter_id);

-- rate_spend: what each node of a cluster sharing this database admitted
-- under each rate limit (API keys, tokens, integrations), so that every
-- node charges its own limiter for the others' requests and a limit holds
-- for the cluster, not for each node (internal/server, ratesync.go).
--
--   node         a random id each keyward process takes at start
--   key          the limiter's key (its kind, a NUL byte, then the key id,
--                accessor or integration: bytes, since TEXT holds no NUL)
--   interval_ns  one request's share of the limit (period / count)
--   total        requests admitted by that node since the row was created
--   created      unix nanoseconds: a row created before a node started is
--                history to it, not spending to charge
--   updated      unix nanoseconds of the last addition; rows not updated
--                for ten minutes are swept
--
-- UNLOGGED: written several times a second, useful for a minute; after a
-- crash PostgreSQL empties it, which forgets at most one period of
-- spending.
CREATE UNLOGGED TABLE rate_spend (
    node        TEXT NOT NULL,
    key         BYTEA NOT NULL,
    interval_ns BIGINT NOT NULL,
    total       BIGINT NOT NULL,
    created     BIGINT NOT NULL,
    updated     BIGINT NOT NULL,
    PRIMARY KEY (node, key)
);
CREATE INDEX rate_spend_updated ON rate_spend (updated);

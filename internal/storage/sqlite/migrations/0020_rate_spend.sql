-- rate_spend: what each node of a cluster sharing the database admitted
-- under each rate limit (internal/server, ratesync.go). keyward uses it only
-- on PostgreSQL, where several nodes share one database; the table exists
-- here so that both backends have the same schema.
CREATE TABLE rate_spend (
    node        TEXT NOT NULL,
    key         BLOB NOT NULL,
    interval_ns INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    PRIMARY KEY (node, key)
) STRICT;
CREATE INDEX rate_spend_updated ON rate_spend (updated);

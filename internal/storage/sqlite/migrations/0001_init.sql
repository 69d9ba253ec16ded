-- sys: small named values of the node itself (seal configuration, sealed
-- keyring, root token hash). Times are unix nanoseconds.
-- Tables are STRICT so SQLite enforces column types as PostgreSQL does;
-- INTEGER is SQLite's 64-bit integer (BIGINT in the postgres files).
CREATE TABLE sys (
	key TEXT PRIMARY KEY,
	value BLOB NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

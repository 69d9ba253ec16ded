-- sys: small named values of the node itself (seal configuration, sealed
-- keyring, root token hash). Times are unix nanoseconds.
CREATE TABLE sys (
	key TEXT PRIMARY KEY,
	value BYTEA NOT NULL,
	updated_at BIGINT NOT NULL
);

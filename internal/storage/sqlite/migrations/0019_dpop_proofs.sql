-- dpop_proofs: the DPoP proofs (RFC 9449) accepted by any node sharing the
-- database (internal/dpop, Options.Shared). keyward uses it only on
-- PostgreSQL, where several nodes share one database; a SQLite database
-- belongs to one node, whose in-memory replay cache is enough. The table
-- exists here so that both backends have the same schema.
--
--   key      the first 16 bytes of SHA-256(key thumbprint || 0x00 || jti)
--   expires  unix nanoseconds after which the proof's iat window has ended
--            on every node
CREATE TABLE dpop_proofs (
    key     BLOB PRIMARY KEY,
    expires INTEGER NOT NULL
) STRICT;

-- dpop_proofs: the DPoP proofs (RFC 9449) accepted by any node sharing this
-- database, so that a proof one node accepted is refused as replayed by
-- every other (internal/dpop, Options.Shared). Each node also keeps its own
-- in-memory replay cache; a proof is claimed here only after it passed
-- every other check.
--
--   key      the first 16 bytes of SHA-256(key thumbprint || 0x00 || jti)
--   expires  unix nanoseconds after which the proof's iat window has ended
--            on every node (iat + window + the clock skew allowed between
--            nodes); an expired row may be claimed again and is swept
--            every minute
--
-- UNLOGGED: a claim is one small write on every DPoP-bound call, and the
-- rows matter for two minutes at most. PostgreSQL empties an unlogged table
-- after a crash and does not copy it to standbys, which reopens the replay
-- window of the proofs of the last two minutes once, as restarting a node
-- does for its in-memory cache.
CREATE UNLOGGED TABLE dpop_proofs (
    key     BYTEA PRIMARY KEY,
    expires BIGINT NOT NULL
);

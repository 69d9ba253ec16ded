-- rate: a token's own rate limit (issue 5), in ratelimit's form ("100/min",
-- "10/30s"); empty: none. Counted per node at the edge for every request
-- the token makes. A child's rate is never looser than its parent's.
ALTER TABLE tokens ADD COLUMN rate TEXT NOT NULL DEFAULT '';

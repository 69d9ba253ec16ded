-- events: the append-only log of changes every node must apply to its caches
-- (token revocations, policy changes). Nodes poll it by seq.
CREATE TABLE events (
	seq  BIGSERIAL PRIMARY KEY,
	kind TEXT NOT NULL,
	key  TEXT NOT NULL,
	time BIGINT NOT NULL
);
CREATE INDEX events_time ON events (time);

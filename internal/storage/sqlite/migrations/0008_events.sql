-- events: the append-only log of changes every node must apply to its caches
-- (token revocations, policy changes). Nodes poll it by seq.
CREATE TABLE events (
	seq  INTEGER PRIMARY KEY AUTOINCREMENT,
	kind TEXT NOT NULL,
	key  TEXT NOT NULL,
	time INTEGER NOT NULL
) STRICT;
CREATE INDEX events_time ON events (time);

-- usage: request counts per credential or integration, per minute and
-- status. Nodes add their in-memory counts every few seconds (upsert), so a
-- row is the sum over all nodes.
CREATE TABLE usage (
	kind    TEXT NOT NULL,
	subject TEXT NOT NULL,
	minute  INTEGER NOT NULL,
	status  INTEGER NOT NULL,
	count   INTEGER NOT NULL,
	PRIMARY KEY (kind, subject, minute, status)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_minute ON usage (minute);

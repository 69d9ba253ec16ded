-- alerts: what credential monitoring detected (internal/monitor,
-- detect.go): one row per detection kind, credential and minute. The
-- unique key makes nodes that evaluate the same minute record (and act on)
-- each detection once.
--
--   kind          spike | refusals
--   subject_kind  key | token; subject: the key id or token accessor
--   minute        unix minutes: the minute the counts are of
--   count         the minute's requests (spike) or refusals (refusals)
--   baseline      spike: the average requests a minute over the hour before
--   response      alert (recorded only) or revoked, or why revoking failed
CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    time         INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject      TEXT NOT NULL,
    minute       INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    baseline     REAL NOT NULL,
    response     TEXT NOT NULL,
    UNIQUE (kind, subject_kind, subject, minute)
) STRICT;
CREATE INDEX alerts_time ON alerts (time);

-- Audit entries in blocks: audit_blocks replaces audit_log. A row holds a
-- run of consecutive entries (up to 64, those one group commit wrote
-- together), so appending a batch inserts one row per 64 entries instead
-- of one row and one index entry per entry: on the 2-core machine the
-- audit log's write went from 4.3-5.9 to 2.7 µs of CPU an entry with one
-- principal, from 5.6-6.2 to 2.5 with three (internal/audit
-- BenchmarkWriteBatch).
--
--   seq       the seq of the block's last entry; it holds entries
--             seq-n+1 .. seq
--   n         how many entries the block holds
--   time_max  the latest time of its entries (Prune's cut, List's since)
--   entries   a JSON array of the entries' texts, each a JSON array of 14
--             values: [time, principal, request_id, auth_method,
--             accessor_hmac, action, resource, environment, source_addr,
--             user_agent, outcome, status, latency_us, detail]
--             (internal/audit entrytext.go); a string value may be null:
--             the same as the entry before's in the block
--   hashes    the entries' hashes, 32 bytes each, in seq order
--
-- audit_principals lists, for List by principal, each principal of a
-- block once: (principal, the block's seq).
--
-- Every row of audit_log becomes a block of one entry. The hash covers the
-- field values, not the text, so every chain and signed checkpoint
-- verifies as before.
CREATE TABLE audit_blocks (
    seq      INTEGER PRIMARY KEY,
    n        INTEGER NOT NULL,
    time_max INTEGER NOT NULL,
    entries  TEXT NOT NULL,
    hashes   BLOB NOT NULL
) STRICT;

CREATE TABLE audit_principals (
    principal TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (principal, seq)
) STRICT, WITHOUT ROWID;

INSERT INTO audit_blocks (seq, n, time_max, entries, hashes)
SELECT seq, 1, time, '[[' || time || ',' || json_quote(principal) || ',' || substr(entry, 2) || ']', hash
FROM audit_log ORDER BY seq;

INSERT INTO audit_principals (principal, seq) SELECT principal, seq FROM audit_log;

DROP TABLE audit_log;

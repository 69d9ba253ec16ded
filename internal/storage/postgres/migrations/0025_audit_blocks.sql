-- Audit entries in blocks: audit_blocks replaces audit_log (see the SQLite
-- migration of the same number for the layout and why).
CREATE TABLE audit_blocks (
    seq      BIGINT PRIMARY KEY,
    n        BIGINT NOT NULL,
    time_max BIGINT NOT NULL,
    entries  TEXT NOT NULL,
    hashes   BYTEA NOT NULL
);

CREATE TABLE audit_principals (
    principal TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (principal, seq)
);

INSERT INTO audit_blocks (seq, n, time_max, entries, hashes)
SELECT seq, 1, time, '[[' || time::text || ',' || to_json(principal)::text || ',' || substr(entry, 2) || ']', hash
FROM audit_log;

INSERT INTO audit_principals (principal, seq) SELECT principal, seq FROM audit_log;

DROP TABLE audit_log;

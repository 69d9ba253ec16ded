-- Audit log (issue: audit): a hash-chained, append-only record of every
-- request. Times are unix nanoseconds; hashes are SHA-256 (32 bytes).
-- entry hash = SHA-256(prev_hash || canonical entry bytes); see internal/audit.
-- detail holds the exact JSON text that was hashed ('' when there is none).
CREATE TABLE audit_entries (
    seq           BIGINT PRIMARY KEY,
    time          BIGINT NOT NULL,
    request_id    TEXT NOT NULL,
    principal     TEXT NOT NULL,
    auth_method   TEXT NOT NULL,
    accessor_hmac TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource      TEXT NOT NULL,
    environment   TEXT NOT NULL,
    source_addr   TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    status        BIGINT NOT NULL,
    latency_us    BIGINT NOT NULL,
    detail        TEXT NOT NULL,
    prev_hash     BYTEA NOT NULL,
    hash          BYTEA NOT NULL
);

CREATE INDEX audit_entries_time ON audit_entries (time);
CREATE INDEX audit_entries_principal ON audit_entries (principal, seq);

-- The chain head: the last entry's seq and hash (0 and 32 zero bytes before
-- the first entry) and the seq of the last signed checkpoint. Every append
-- locks and reads this row, which gives all appenders one total order.
CREATE TABLE audit_head (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    seq            BIGINT NOT NULL,
    hash           BYTEA NOT NULL,
    checkpoint_seq BIGINT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, checkpoint_seq) VALUES (1, 0, decode(repeat('00', 32), 'hex'), 0);

-- Signed checkpoints: Ed25519 over (seq, hash, time) by the barrier's audit key.
CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    time      BIGINT NOT NULL
);

-- The prune anchor: seq and hash of the last deleted entry, signed, from which
-- verification starts (seq 0 and 32 zero bytes, unsigned, before any prune).
CREATE TABLE audit_anchor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       BIGINT NOT NULL,
    hash      BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    time      BIGINT NOT NULL
);
INSERT INTO audit_anchor (id, seq, hash, signature, time) VALUES (1, 0, decode(repeat('00', 32), 'hex'), ''::bytea, 0);

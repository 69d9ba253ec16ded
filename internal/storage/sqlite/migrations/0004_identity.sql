-- Identities (issue: identity): users, service accounts and trusted JWT
-- issuers. Times are unix nanoseconds; durations are nanoseconds.
-- Password hashes are argon2id PHC strings; TOTP secrets are ciphertext
-- sealed by the barrier; service secrets are kept only as HMAC-SHA256 under
-- a barrier-derived key. Lists (policies, CIDRs) are JSON arrays.
CREATE TABLE identity_users (
    name           TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    policies       TEXT NOT NULL,
    token_ttl      INTEGER NOT NULL,
    token_max_ttl  INTEGER NOT NULL,
    totp_secret    BLOB,
    totp_digits    INTEGER NOT NULL DEFAULT 6,
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    disabled_at    INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE identity_services (
    name               TEXT PRIMARY KEY,
    client_id          TEXT NOT NULL UNIQUE,
    secret_hash        BLOB NOT NULL,
    secret_created_at  INTEGER NOT NULL,
    prev_secret_hash   BLOB,
    prev_expires_at    INTEGER,
    policies           TEXT NOT NULL,
    token_ttl          INTEGER NOT NULL,
    token_max_ttl      INTEGER NOT NULL,
    bound_cidrs        TEXT NOT NULL,
    disabled_at        INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE TABLE identity_jwt_issuers (
    name        TEXT PRIMARY KEY,
    config      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

-- Identities (issue: identity): users, service accounts and trusted JWT
-- issuers. Times are unix nanoseconds; durations are nanoseconds.
-- Password hashes are argon2id PHC strings; TOTP secrets are ciphertext
-- sealed by the barrier; service secrets are kept only as HMAC-SHA256 under
-- a barrier-derived key. Lists (policies, CIDRs) are JSON arrays.
CREATE TABLE identity_users (
    name           TEXT COLLATE "C" PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    policies       TEXT NOT NULL,
    token_ttl      BIGINT NOT NULL,
    token_max_ttl  BIGINT NOT NULL,
    totp_secret    BYTEA,
    totp_digits    BIGINT NOT NULL DEFAULT 6,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    disabled_at    BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE identity_services (
    name               TEXT COLLATE "C" PRIMARY KEY,
    client_id          TEXT NOT NULL UNIQUE,
    secret_hash        BYTEA NOT NULL,
    secret_created_at  BIGINT NOT NULL,
    prev_secret_hash   BYTEA,
    prev_expires_at    BIGINT,
    policies           TEXT NOT NULL,
    token_ttl          BIGINT NOT NULL,
    token_max_ttl      BIGINT NOT NULL,
    bound_cidrs        TEXT NOT NULL,
    disabled_at        BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

CREATE TABLE identity_jwt_issuers (
    name        TEXT COLLATE "C" PRIMARY KEY,
    config      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

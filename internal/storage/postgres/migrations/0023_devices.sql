-- Devices (internal/device): enrollment codes and the devices enrolled with
-- them, each under its own key.
--
-- device_enrollments: a code (kwe_…) for a batch of devices; only its HMAC
--   is kept (code_hash). remaining counts the devices that may still use
--   it; times are unix nanoseconds (revoked_at 0: live).
-- devices: jkt is the RFC 7638 thumbprint of the device's public key, which
--   signs its DPoP proofs; one key, one device. disabled_at 0: enabled.
CREATE TABLE device_enrollments (
    id         TEXT PRIMARY KEY,
    code_hash  TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL,
    policies   TEXT NOT NULL,
    uses       BIGINT NOT NULL,
    remaining  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    jkt           TEXT NOT NULL UNIQUE,
    policies      TEXT NOT NULL,
    enrollment_id TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT NOT NULL
);

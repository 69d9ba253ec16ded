-- identity_services.last_login_at: see the SQLite migration of the same number.
ALTER TABLE identity_services ADD COLUMN last_login_at BIGINT NOT NULL DEFAULT 0;

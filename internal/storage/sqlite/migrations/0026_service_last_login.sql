-- identity_services.last_login_at: when the account last logged in (unix
-- nanoseconds, 0: never), written at most once a minute per account, for
-- the inventory's "unused for" (keyward inventory --kind service).
ALTER TABLE identity_services ADD COLUMN last_login_at INTEGER NOT NULL DEFAULT 0;

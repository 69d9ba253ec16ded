-- Projects, environments and versioned secrets (issue: secrets).
-- Times are unix nanoseconds. Values are ciphertext sealed by the barrier.
CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);

CREATE TABLE environments (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE secrets (
    env_id          TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    path            TEXT NOT NULL,
    current_version INTEGER NOT NULL,
    oldest_version  INTEGER NOT NULL,
    meta            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    updated_by      TEXT NOT NULL,
    deleted_at      INTEGER,
    PRIMARY KEY (env_id, path)
);

CREATE TABLE secret_versions (
    env_id       TEXT NOT NULL,
    path         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    ciphertext   BLOB,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    destroyed_at INTEGER,
    PRIMARY KEY (env_id, path, version)
);

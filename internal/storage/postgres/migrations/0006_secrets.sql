-- Projects, environments and versioned secrets (issue: secrets).
-- Times are unix nanoseconds. Values are ciphertext sealed by the barrier.
CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);

CREATE TABLE environments (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE secrets (
    env_id          TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    path            TEXT COLLATE "C" NOT NULL,
    current_version BIGINT NOT NULL,
    oldest_version  BIGINT NOT NULL,
    meta            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    updated_by      TEXT NOT NULL,
    deleted_at      BIGINT,
    PRIMARY KEY (env_id, path)
);

CREATE TABLE secret_versions (
    env_id       TEXT NOT NULL,
    path         TEXT COLLATE "C" NOT NULL,
    version      BIGINT NOT NULL,
    ciphertext   BYTEA,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    destroyed_at BIGINT,
    PRIMARY KEY (env_id, path, version)
);

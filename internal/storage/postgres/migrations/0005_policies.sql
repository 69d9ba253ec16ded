-- Policies (issue: policy). document is the policy's canonical YAML;
-- updated_at is unix nanoseconds.
CREATE TABLE policies (
    name       TEXT COLLATE "C" PRIMARY KEY,
    document   TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

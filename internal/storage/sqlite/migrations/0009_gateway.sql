-- Gateway integrations (issue 5): an upstream API, the secret whose value is
-- injected into calls to it, and what callers may do through it. No secret
-- value is stored here, only the reference PROJECT/ENV/PATH.
-- Lists (methods, paths, strip_headers) are JSON arrays of strings.
-- Times are unix nanoseconds.
CREATE TABLE integrations (
    name           TEXT PRIMARY KEY,
    upstream       TEXT NOT NULL,
    secret_ref     TEXT NOT NULL,
    inject         TEXT NOT NULL,
    methods        TEXT NOT NULL,
    paths          TEXT NOT NULL,
    timeout_ms     INTEGER NOT NULL,
    max_body_bytes INTEGER NOT NULL,
    strip_headers  TEXT NOT NULL,
    allow_private  INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    created_by     TEXT NOT NULL,
    updated_at     INTEGER NOT NULL,
    updated_by     TEXT NOT NULL
) STRICT;

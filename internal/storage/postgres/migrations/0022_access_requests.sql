-- access_requests: just-in-time access (internal/access). A principal asks
-- for policies for a while and a reason; another principal approves or
-- denies; the requester exchanges an approved request for a token once.
--
--   policies    JSON array of policy names
--   ttl         the granted token's lifetime, nanoseconds
--   state       pending | approved | denied | issued (expiry is computed)
--   decided_by  the approver's or denier's principal; decided_at unix ns
--   accessor    the token the request was exchanged for
CREATE TABLE access_requests (
    id         TEXT PRIMARY KEY,
    requester  TEXT NOT NULL,
    policies   TEXT NOT NULL,
    ttl        BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at BIGINT NOT NULL,
    note       TEXT NOT NULL,
    accessor   TEXT NOT NULL
);
CREATE INDEX access_requests_created ON access_requests (created_at);

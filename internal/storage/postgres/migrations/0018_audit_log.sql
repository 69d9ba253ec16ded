-- Audit entries in five columns: audit_log replaces
-- audit_entries. Appending an entry writes one narrow row and one index
-- entry instead of seventeen columns and two indexes.
--
--   seq, time, principal  as before (seq and principal for List by
--                         principal; time for Prune and List by time)
--   entry                 the other fields as one compact JSON array, in
--                         this order: [request_id, auth_method,
--                         accessor_hmac, action, resource, environment,
--                         source_addr, user_agent, outcome, status,
--                         latency_us, detail]; status and latency_us are
--                         integers, the rest strings (detail holds the
--                         exact JSON text that was hashed, '' when none)
--   hash                  SHA-256(prev_hash || canonical entry), unchanged
--
-- prev_hash is no longer stored: it is the hash of entry seq-1, or for the
-- first entry the prune anchor's hash (32 zero bytes before any prune). The
-- hash covers the field values, not the entry text (internal/audit
-- encoding.go and entrytext.go), so every chain and signed checkpoint
-- verifies as before. to_json spells each string exactly as keyward's
-- writer does (only '"', '\' and control characters escaped, the latter as
-- \b \t \n \f \r or \u00xx); the array is assembled by hand because
-- json_build_array puts a space after each comma.
--
-- There is no index on time: Prune's cut (the first seq whose time is not
-- older) is found walking seq upwards, which reads about as many rows as
-- it deletes; List by time walks seq too. time is not monotonic along seq
-- (an entry carries its request's start time and is appended when the
-- request ends), so neither assumes it is.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    time      BIGINT NOT NULL,
    principal TEXT NOT NULL,
    entry     TEXT NOT NULL,
    hash      BYTEA NOT NULL
);

INSERT INTO audit_log (seq, time, principal, entry, hash)
SELECT seq, time, principal,
       '[' || to_json(request_id)::text || ',' || to_json(auth_method)::text
           || ',' || to_json(accessor_hmac)::text || ',' || to_json(action)::text
           || ',' || to_json(resource)::text || ',' || to_json(environment)::text
           || ',' || to_json(source_addr)::text || ',' || to_json(user_agent)::text
           || ',' || to_json(outcome)::text || ',' || status::text
           || ',' || latency_us::text || ',' || to_json(detail)::text || ']',
       hash
FROM audit_entries;

DROP TABLE audit_entries;

CREATE INDEX audit_log_principal ON audit_log (principal, seq);

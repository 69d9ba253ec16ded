// Package gateway is keyward's API gateway: integrations (an upstream API,
// the secret holding its credential, how the credential is injected, and
// what callers may ask) and the proxy that forwards a caller's request to
// the upstream with the credential added, so the caller never holds it.
//
// Invariants:
//   - The credential goes to the integration's upstream host and nowhere
//     else: requests are built from the stored upstream URL, redirects are
//     returned to the caller unfollowed, and environment proxies are never
//     used.
//   - The caller's own credentials (Authorization, Cookie, DPoP, keyward's
//     X-Keyward-* headers), hop-by-hop headers and every header the caller
//     names in Connection are removed before the credential is injected, so
//     no header trick removes or replaces it.
//   - A path is forwarded only if every segment decodes to something that
//     is not empty, ".", ".." (also "..;"), and holds no '/', '\', '%',
//     control character or invalid UTF-8 once decoded; the globs are matched
//     on the decoded segments and the upstream receives the same segments,
//     so an encoding can never make the upstream see a path the globs did
//     not.
//   - Without allow_private, a connection to a loopback, private,
//     link-local, unspecified, multicast, CGNAT or reserved address is
//     refused at dial time (net.Dialer.ControlContext, after DNS), so DNS
//     rebinding cannot bypass the check; such integrations use a transport
//     of their own so pooled connections are never shared across the two.
//   - Every response header one of whose values holds a form of the
//     credential (raw, URL-escaped, base64, the injected header value) is
//     removed. Response bodies are streamed as they are: an upstream that
//     echoes the credential in a body is not protected against.
//   - Errors and their messages never carry the secret value; a network
//     error's URL (whose query may hold a query-injected credential) is
//     dropped before the error leaves the package.
//
// Secret values are cached in memory, resolved on first use. The secret
// store announces every change of a secret's current value (write,
// rollback, delete, destroy) twice: through a post-commit hook on the node
// that made it, which drops the cached value at once — so on that node the
// next call after a rotation uses the new value — and through a
// "secret.change" row in the events table, which every other node's poller
// applies within its poll interval (200 ms by default). This was chosen
// over re-reading the secret's version on every call: that is a database
// read per proxied call (tens of microseconds on SQLite, a round trip on
// PostgreSQL) for a value that changes a few times a year, and rotations
// keep the old credential valid for an overlap window anyway. Integrations
// are cached the same way, through "integration.change" events.
//
// Callers of the proxy are authorised by the HTTP edge with action "proxy"
// on "integrations/NAME"; narrowing to paths is the integration's own path
// globs. Rate limits and the audit entry of each call live at the edge too
// (internal/httpapi). A call is Prepared (the integration's methods, paths,
// declared body size, query and headers: nothing sent, no secret read) and
// then Sent, so the edge spends the caller's limits only on calls the
// integration accepts. Send reports what the audit
// entry needs (status, bytes in and out) and nothing else, and keeps the
// edge's own RateLimit-* headers over the upstream's.
//
// Imported by internal/server and internal/httpapi only. It imports
// internal/storage, internal/events, internal/ratelimit and
// internal/sockio.
package gateway

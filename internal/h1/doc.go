// Package h1 serves HTTP/1.1 for keyward's data plane (the gateway
// listener): the same http.Handler as net/http's server, at a third of its
// per-request overhead.
//
// # Why not net/http's server
//
// On the gateway's hot path (a small call proxied to an upstream) net/http's
// server costs more than keyward's own work: after reading each request it
// starts a background read to notice a client that goes away, and ends it
// with a deadline change that wakes a second goroutine; it allocates a
// response, a chunk writer, two bufio buffers and a context per request. A
// connection served here is one goroutine that reads a request, calls the
// handler and writes the answer, nothing else.
//
// # What is not hand-written
//
// Parsing untrusted bytes is net/http's, with one exception. A request
// (line, headers, body framing: Content-Length, chunked, their conflicts)
// is read by http.ReadRequest, the same code net/http's server runs. The
// exception is the simple head that most gateway and API calls send
// (fast.go): an origin-form target, HTTP/1.1, CRLF line ends, at most 64
// plain field lines, no Transfer-Encoding, at most one Content-Length (of
// 1 to 18 digits), at most one Host. Such a head, once buffered whole, is
// parsed by hand into the request http.ReadRequest would give, consuming
// the same bytes, with a body read as its body is; a differential fuzz
// test holds the two together (FuzzFastRequest). Any other head goes,
// untouched, to http.ReadRequest.
//
// This package adds the checks net/http's server makes after parsing (the
// HTTP version, exactly one valid Host, valid header names and values),
// whichever parsed the head (a simple head's names and values are valid by
// its parser's construction, which FuzzFastRequest also checks, so their
// check is skipped; its parser also reports its Host field, as the scan of
// any other head does, which FuzzFastRequest checks too), and the
// connection's life: keep-alive, timeouts, Expect: 100-continue, the
// framing of the answer, draining an unread body, Hijack for WebSocket
// sessions, graceful shutdown. A differential fuzz test holds it to
// net/http's server: for any byte stream both answer the same requests
// with the same statuses and see the same request (FuzzDifferential).
//
// # Differences from net/http's server
//
//   - HTTP/1.x only. On TLS, a client that negotiates h2 (ALPN) is handed,
//     after the handshake, to a net/http server with the same handler
//     (Server.H2).
//   - A request's context is never cancelled (its Done is nil): with no
//     background read, nothing could notice a client that goes away while
//     the handler runs, and a context per request, or one per connection
//     ended after its last handler, would cost callers that watch it (the
//     gateway's upstream client skips its watch for a context that cannot
//     end). The gateway bounds every upstream call with the integration's
//     timeout, and a write to a departed client fails. A handler must not
//     leave work behind that waits for its request's context to end.
//   - No Content-Type sniffing: an answer without Content-Type goes
//     without one.
//   - No h2c, no 1xx other than 100 Continue and through Hijack, no
//     trailers in answers.
//   - WriteStallTimeout ends a connection whose client stops reading, a
//     write at a time; there is no whole-answer WriteTimeout.
//   - http.ResponseController supports Flush and Hijack only (not
//     SetReadDeadline, SetWriteDeadline or EnableFullDuplex). Hijack after
//     WriteHeader drops a head not yet sent.
//   - A body past http.MaxBytesReader's limit is drained up to 256 KB and
//     the connection kept, where net/http's server closes it.
//
// Only internal/server imports this package.
package h1

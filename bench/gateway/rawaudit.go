package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/sqlite"
)

// callLog gives rawproxy keyward's audit log: with -audit DIR, every
// forwarded call is appended to an audit.Log on a SQLite store in DIR,
// exactly as the gateway appends its own (AppendAsync: hash-chained,
// group-committed, durable before the batch's callback), with an entry of
// the same shape (request id, action, resource, method, path, status,
// latency, bytes). rawproxy-audit is then the floor of a Go proxy that
// keeps keyward's record of each call, a second reference between rawproxy
// and the gateway (what the entry adds to the gateway itself is not
// necessarily what it adds to rawproxy: bench/README.md).
type callLog struct {
	log   *audit.Log
	store storage.Store
}

// openCallLog opens (creating) the audit log of rawproxy -audit in dir.
func openCallLog(ctx context.Context, dir string) (*callLog, error) {
	st, err := sqlite.Open(ctx, filepath.Join(dir, "audit.db"), storage.Options{})
	if err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		st.Close()
		return nil, err
	}
	l, err := audit.Open(ctx, st, edSigner{priv}, audit.Options{})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &callLog{log: l, store: st}, nil
}

// Close writes what is queued and closes the log and its store.
func (c *callLog) Close() error {
	err := c.log.Close()
	if cerr := c.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// record queues the entry of one call: start line "METHOD TARGET
// HTTP/1.1", the upstream's status code (three digits), the body sizes.
func (c *callLog) record(start time.Time, startLine []byte, code string, in, out int64) {
	status, _ := strconv.Atoi(code)
	method, target := "", ""
	if i := bytes.IndexByte(startLine, ' '); i > 0 {
		method = string(startLine[:i])
		rest := startLine[i+1:]
		if j := bytes.IndexByte(rest, ' '); j >= 0 {
			rest = rest[:j]
		}
		target = string(rest)
	}
	var id [16]byte
	rand.Read(id[:])
	outcome := audit.OutcomeAllowed
	if status >= 500 {
		outcome = audit.OutcomeError
	}
	e := &audit.Entry{
		Time: start.UTC(), RequestID: hex.EncodeToString(id[:]),
		Principal: "rawproxy", AuthMethod: "none", Action: "proxy", Resource: "integrations/up",
		Outcome: outcome, Status: status, LatencyUS: time.Since(start).Microseconds(),
		Detail: map[string]string{
			"method": method, "path": target,
			"bytes_in": strconv.FormatInt(in, 10), "bytes_out": strconv.FormatInt(out, 10),
		},
	}
	if err := c.log.AppendAsync(e, c.failed); err != nil {
		// The queue is full or the log closed: append synchronously, as
		// the gateway does (backpressure), or give up when closed.
		_ = c.log.Append(context.Background(), e)
	}
}

// failed is told the result of each queued entry's batch, as the
// gateway's callback is; a failure is reported on stderr.
func (c *callLog) failed(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "rawproxy: audit append failed:", err)
	}
}

// edSigner signs the log's checkpoints with a key of the run (keyward's
// is the barrier's; what matters here is the cost, the same).
type edSigner struct{ priv ed25519.PrivateKey }

func (s edSigner) SignAudit(msg []byte) ([]byte, error) { return ed25519.Sign(s.priv, msg), nil }

func (s edSigner) AuditPublicKey() (ed25519.PublicKey, error) {
	return s.priv.Public().(ed25519.PublicKey), nil
}

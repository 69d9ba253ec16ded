package audit

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type collector struct {
	mu      sync.Mutex
	lines   []string
	fail    atomic.Int32 // answer 503 to this many requests first
	secret  []byte
	badSigs int
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if c.fail.Add(-1) >= 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	ts, _ := strconv.ParseInt(r.Header.Get("X-Keyward-Timestamp"), 10, 64)
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Header.Get("Content-Type") != "application/x-ndjson" || r.Header.Get("X-Keyward-Signature") != Sign(c.secret, ts, body) {
		c.badSigs++
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		c.lines = append(c.lines, sc.Text())
	}
}

func (c *collector) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Lines arrive in order, in signed batches, after the endpoint's failures.
func TestWebhookDeliversInOrder(t *testing.T) {
	c := &collector{secret: []byte("shared-secret-0123456789")}
	c.fail.Store(2)
	srv := httptest.NewServer(c)
	defer srv.Close()
	w := newWebhook(srv.URL+"/ingest", c.secret, nil, nil, 20*time.Millisecond, 5*time.Second)
	for i := range 1200 { // more than two batches
		w.Write([]byte(`{"seq":` + strconv.Itoa(i) + "}\n"))
	}
	waitFor(t, "1200 lines", func() bool { return len(c.got()) == 1200 })
	for i, l := range c.got() {
		if l != `{"seq":`+strconv.Itoa(i)+"}" {
			t.Fatalf("line %d = %q", i, l)
		}
	}
	if c.badSigs != 0 || w.Dropped() != 0 {
		t.Fatalf("bad signatures %d, dropped %d", c.badSigs, w.Dropped())
	}
	w.Write([]byte(`{"seq":"last"}`))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := c.got(); got[len(got)-1] != `{"seq":"last"}` {
		t.Fatalf("Close did not flush: last line %q", got[len(got)-1])
	}
}

// An endpoint that keeps failing costs the batch, reported, without the URL.
func TestWebhookDropsAfterRetrying(t *testing.T) {
	c := &collector{secret: []byte("s")}
	c.fail.Store(1 << 30)
	srv := httptest.NewServer(c)
	defer srv.Close()
	var reported atomic.Value
	w := newWebhook(srv.URL+"/ingest?token=collector-token-value", c.secret, nil, func(err error) { reported.Store(err.Error()) }, 10*time.Millisecond, 100*time.Millisecond)
	w.Write([]byte(`{"seq":1}`))
	waitFor(t, "a drop", func() bool { return w.Dropped() == 1 })
	msg, _ := reported.Load().(string)
	if !strings.Contains(msg, "1 entries dropped") || !strings.Contains(msg, "503") {
		t.Fatalf("reported %q", msg)
	}
	w.Close()

	// Unreachable: the error names no URL (it may carry a token).
	w = newWebhook("http://127.0.0.1:1/ingest?token=collector-token-value", c.secret, nil, func(err error) { reported.Store(err.Error()) }, 10*time.Millisecond, 50*time.Millisecond)
	w.Write([]byte(`{"seq":2}`))
	waitFor(t, "a drop", func() bool { return w.Dropped() == 1 })
	if msg, _ := reported.Load().(string); strings.Contains(msg, "collector-token-value") {
		t.Fatalf("the error quotes the URL: %q", msg)
	}
	w.Close()
}

func TestWebhookBacklogIsBounded(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	w := newWebhook(srv.URL, []byte("s"), &http.Client{Timeout: time.Second}, nil, time.Hour, time.Hour)
	defer w.Close()
	defer close(block)
	var refused int
	// One batch may be taken (and stuck on the endpoint) while the rest waits.
	for range WebhookBacklog + WebhookBatch + 10 {
		if _, err := w.Write([]byte("{}")); err != nil {
			refused++
		}
	}
	if refused < 10 || refused > WebhookBatch+10 || uint64(refused) != w.Dropped() {
		t.Fatalf("refused %d, dropped %d; want the lines past the backlog", refused, w.Dropped())
	}
}

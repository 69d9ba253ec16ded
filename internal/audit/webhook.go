package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Webhook settings.
const (
	// WebhookBatch is the most lines one POST carries.
	WebhookBatch = 500
	// WebhookEvery is how long a line waits for others before it is sent.
	WebhookEvery = time.Second
	// WebhookRetryFor is how long a batch is retried (with backoff) before
	// it is dropped and reported.
	WebhookRetryFor = 2 * time.Minute
	// WebhookBacklog is the most lines waiting to be sent; past it, lines
	// are refused (and counted as dropped) rather than kept in memory.
	WebhookBacklog = 100_000
	// webhookTimeout bounds one POST.
	webhookTimeout = 10 * time.Second
)

// Webhook POSTs the lines written to it to an HTTP endpoint, best effort
// and from memory (the access requests' notifications; the audit log
// itself is shipped by a Shipper, from storage): JSON lines
// (application/x-ndjson), up to WebhookBatch a request, at least every
// WebhookEvery, in order.
// Each request is signed: X-Keyward-Timestamp holds the unix time and
// X-Keyward-Signature "sha256=" and the hex HMAC-SHA256, under the shared
// secret, of the timestamp, a dot and the body, so the receiver can check
// where it came from and refuse replays. A batch the endpoint does not take
// (a 2xx) is retried with backoff for WebhookRetryFor, then dropped and
// reported; Write never waits for the network.
type Webhook struct {
	poster
	onError func(error)
	// every and retryFor are WebhookEvery and WebhookRetryFor (tests
	// shorten them).
	every, retryFor time.Duration

	mu      sync.Mutex
	pending [][]byte
	dropped atomic.Uint64

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

// NewWebhook starts a webhook sink to url; hc nil uses a client of its own;
// onError, when set, hears of batches dropped.
func NewWebhook(url string, secret []byte, hc *http.Client, onError func(error)) *Webhook {
	return newWebhook(url, secret, hc, onError, WebhookEvery, WebhookRetryFor)
}

func newWebhook(url string, secret []byte, hc *http.Client, onError func(error), every, retryFor time.Duration) *Webhook {
	if hc == nil {
		hc = &http.Client{Timeout: webhookTimeout}
	}
	w := &Webhook{poster: poster{url: url, secret: secret, hc: hc}, onError: onError, every: every, retryFor: retryFor,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Write queues one line (the log's sink writes one entry a call).
func (w *Webhook) Write(p []byte) (int, error) {
	w.mu.Lock()
	if len(w.pending) >= WebhookBacklog {
		w.mu.Unlock()
		w.dropped.Add(1)
		return 0, errors.New("audit webhook: backlog full; entry dropped")
	}
	w.pending = append(w.pending, bytes.Clone(p))
	full := len(w.pending) >= WebhookBatch
	w.mu.Unlock()
	if full {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Dropped counts the lines not delivered.
func (w *Webhook) Dropped() uint64 { return w.dropped.Load() }

// Close sends what is queued (trying each batch once more) and stops.
func (w *Webhook) Close() error {
	close(w.quit)
	<-w.done
	if n := w.backlog(); n > 0 {
		w.dropped.Add(uint64(n))
		return fmt.Errorf("audit webhook: %d entries not delivered at shutdown", n)
	}
	return nil
}

func (w *Webhook) backlog() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// take removes up to WebhookBatch lines from the queue.
func (w *Webhook) take() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(w.pending), WebhookBatch)
	batch := w.pending[:n:n]
	w.pending = w.pending[n:]
	return batch
}

func (w *Webhook) run() {
	defer close(w.done)
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			for batch := w.take(); len(batch) > 0; batch = w.take() {
				ctx, cancel := context.WithTimeout(context.Background(), webhookTimeout)
				err := w.post(ctx, batch)
				cancel()
				if err != nil {
					w.drop(batch, err)
				}
			}
			return
		case <-t.C:
		case <-w.wake:
		}
		for batch := w.take(); len(batch) > 0; batch = w.take() {
			if !w.deliver(batch) {
				return
			}
		}
	}
}

// deliver posts batch until it is taken or WebhookRetryFor has passed;
// false when the sink is closing (the batch is then dropped).
func (w *Webhook) deliver(batch [][]byte) bool {
	deadline := time.Now().Add(w.retryFor)
	backoff := min(250*time.Millisecond, w.retryFor/4)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), webhookTimeout)
		err := w.post(ctx, batch)
		cancel()
		if err == nil {
			return true
		}
		if time.Now().Add(backoff).After(deadline) {
			w.drop(batch, err)
			return true
		}
		select {
		case <-w.quit:
			w.drop(batch, err)
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

func (w *Webhook) drop(batch [][]byte, err error) {
	w.dropped.Add(uint64(len(batch)))
	if w.onError != nil {
		w.onError(fmt.Errorf("audit webhook: %d entries dropped: %w", len(batch), err))
	}
}

// Sign is the X-Keyward-Signature of body sent at ts under secret, for
// receivers: "sha256=" and hex(HMAC-SHA256(secret, ts + "." + body)).
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// poster signs and POSTs batches of lines to one endpoint.
type poster struct {
	url    string
	secret []byte
	hc     *http.Client
}

func (w *poster) post(ctx context.Context, batch [][]byte) error {
	var body bytes.Buffer
	for _, line := range batch {
		body.Write(line)
		if len(line) == 0 || line[len(line)-1] != '\n' {
			body.WriteByte('\n')
		}
	}
	ts := time.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body.Bytes()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "keyward-audit-webhook")
	req.Header.Set("X-Keyward-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Keyward-Signature", Sign(w.secret, ts, body.Bytes()))
	resp, err := w.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err // without the URL, which may carry a collector's token
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the endpoint answered %s", resp.Status)
	}
	return nil
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// CheckStep is one step of an integration check.
type CheckStep struct {
	Step   string `json:"step"` // integration, secret, token, connect, request
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Millis int64  `json:"ms"`
}

// CheckReport is what Check found. OK when every step passed.
type CheckReport struct {
	Integration string      `json:"integration"`
	OK          bool        `json:"ok"`
	Steps       []CheckStep `json:"steps"`
}

// Check tries an integration the way a call would use it, for its
// operator: the stored settings, the secret (and, for OAuth 2.0, a fresh
// token), a connection to the upstream (DNS, address checks, TLS) and,
// when path is set, a GET of path with the credential injected, of which
// only the status is reported. It stops at the first failure. Details
// name addresses and errors, never the secret, a token or a body.
func (p *Proxy) Check(ctx context.Context, name, path string) *CheckReport {
	rep := &CheckReport{Integration: name, OK: true}
	step := func(s string, start time.Time, err error, okDetail string) bool {
		st := CheckStep{Step: s, OK: err == nil, Detail: okDetail, Millis: time.Since(start).Milliseconds()}
		if err != nil {
			st.Detail, rep.OK = err.Error(), false
		}
		rep.Steps = append(rep.Steps, st)
		return err == nil
	}
	start := time.Now()
	c, err := p.svc.lookup(ctx, name)
	if !step("integration", start, err, "settings are valid") {
		return rep
	}
	start = time.Now()
	e, _, err := p.secret(ctx, c)
	detail := ""
	if err == nil {
		detail = fmt.Sprintf("%s, version %d", c.in.Secret, e.version)
	}
	if !step("secret", start, err, detail) {
		return rep
	}
	start = time.Now()
	if c.oauth2 != nil {
		c.cred.Store(nil) // a fresh token: proves the client secret works now
	}
	cr, _, err := p.credential(ctx, c, time.Now())
	switch {
	case c.oauth2 != nil && errors.Is(err, ErrTokenUnavailable):
		step("token", start, err, "")
		return rep
	case err != nil:
		step("secret", start, err, "")
		return rep
	case c.oauth2 != nil:
		step("token", start, nil, fmt.Sprintf("issued by %s, renewed after %s", c.oauth2.endpoint.u.Host, time.Until(cr.renewAt).Round(time.Second)))
	}
	start = time.Now()
	req := &upstreamRequest{scheme: c.scheme, addr: c.addr, key: c.key, deadline: start.Add(c.timeout)}
	pc, err := p.client(c).dial(ctx, req)
	if err == nil {
		pc.conn.Close()
	}
	if !step("connect", start, err, c.scheme+"://"+c.host+" is reachable") || path == "" {
		return rep
	}
	start = time.Now()
	w := &discardWriter{header: http.Header{}}
	var call Call
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://check.invalid/", nil)
	var prepared Prepared
	if err == nil {
		prepared, err = p.Prepare(w, r, name, path)
	}
	if err == nil {
		call, err = p.Send(w, r, prepared)
	}
	if err == nil && (call.Status < 200 || call.Status >= 400) {
		err = fmt.Errorf("the upstream answered %d to GET %s", call.Status, path)
		if call.Status == http.StatusUnauthorized || call.Status == http.StatusForbidden {
			err = fmt.Errorf("%w: it does not accept the credential (or this path needs more)", err)
		}
	}
	step("request", start, err, fmt.Sprintf("GET %s: %d, %d bytes", path, call.Status, call.BytesOut))
	return rep
}

// discardWriter is the ResponseWriter of a check's request: it keeps the
// status and throws the body away.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(b []byte) (int, error) { return io.Discard.Write(b) }

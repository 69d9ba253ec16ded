package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/keyward/keyward/internal/apikey"
	"github.com/keyward/keyward/internal/httpapi"
	"github.com/keyward/keyward/internal/ratelimit"
)

// Key spaces of the node's shared limiter. API keys count under their
// counter id (key_…), which no prefix below can produce.
const (
	limitToken             = "token\x00"
	limitIntegration       = "integration\x00"
	limitIntegrationCaller = "integration-caller\x00"
	limitLeakReports       = "leaks\x00" // by client address
)

// credentialLimits applies the limits of the credential a request was made
// with (httpapi.Limits). Rates are counted in the node's limiter (shared
// with the other nodes on PostgreSQL, ratesync.go); quotas in storage, so
// they are exact.
type credentialLimits struct {
	keys *apikey.Service
	lim  *ratelimit.Limiter
}

// Authenticated applies a token's own rate to every request the token
// makes, refused ones included: it bounds how hard one token can press on
// the node, whatever it asks for.
func (l *credentialLimits) Authenticated(ctx context.Context, c *httpapi.Caller) (ratelimit.Decision, error) {
	t := c.Token
	if t == nil || t.Rate.IsZero() {
		return ratelimit.Decision{}, nil
	}
	d := l.lim.Allow(limitToken+t.Accessor, t.Rate)
	if !d.Allowed {
		return d, limited(d, "token is over its rate limit of "+t.Rate.String())
	}
	return d, nil
}

// Authorized charges an API key one request of its rate, then one unit of
// its quota, once the request is allowed. Over either is a 429.
func (l *credentialLimits) Authorized(ctx context.Context, c *httpapi.Caller, src netip.Addr) (ratelimit.Decision, error) {
	k := c.Key
	if k == nil {
		return ratelimit.Decision{}, nil
	}
	res, err := l.keys.Charge(ctx, k, src)
	switch {
	case errors.Is(err, apikey.ErrRateLimited):
		e := limited(res.Rate, "API key is over its rate limit of "+k.Rate.String())
		e.Err = err
		return res.Rate, e
	case errors.Is(err, apikey.ErrUsageExceeded):
		e := &httpapi.Error{Status: http.StatusTooManyRequests, Code: httpapi.CodeRateLimited,
			Message: "API key has used its quota", Err: err}
		if next := k.NextRefill(time.Now()); !next.IsZero() {
			e.RetryAfter = time.Until(next)
			e.Message += fmt.Sprintf("; it is refilled at %s", next.Format(time.RFC3339))
		}
		return res.Rate, e
	case err != nil:
		return res.Rate, err
	}
	return res.Rate, nil
}

// limited is the 429 for a refused request, with Retry-After and
// RateLimit-*.
func limited(d ratelimit.Decision, msg string) *httpapi.Error {
	h := http.Header{}
	ratelimit.SetHeaders(h, d)
	return &httpapi.Error{Status: http.StatusTooManyRequests, Code: httpapi.CodeRateLimited,
		Message:    fmt.Sprintf("%s; retry after %ds", msg, max(int64((d.RetryAfter+time.Second-1)/time.Second), 1)),
		RetryAfter: d.RetryAfter, Header: h}
}

// leakReportRate bounds the leak reports one client address may send (an
// open route): 30 a minute, each of up to 100 credentials, is far beyond
// what a scanner or GitHub's secret scanning sends.
var leakReportRate = ratelimit.Limit{Count: 30, Period: time.Minute}

// admitLeakReport spends one of src's leak reports, or refuses with 429.
func (n *Node) admitLeakReport(src string) error {
	if d := n.keyLimiter.Allow(limitLeakReports+src, leakReportRate); !d.Allowed {
		return limited(d, "too many leak reports from this address")
	}
	return nil
}

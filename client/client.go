// Package client is the public Go client for keyward's HTTP API. The keyward
// CLI uses it for every call it makes.
//
//	c, err := client.New(client.Config{Address: "http://127.0.0.1:8270", Token: token})
//	h, err := c.Health(ctx)
//
// Errors returned for an API refusal are *client.Error, carrying the HTTP
// status, the error code of keyward's vocabulary and the request id.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// DefaultAddress is where a local keyward listens by default.
const DefaultAddress = "http://127.0.0.1:8270"

// Config configures a Client.
type Config struct {
	// Address is the server's base URL; default $KEYWARD_ADDR or DefaultAddress.
	Address string
	// Token is the bearer token; default $KEYWARD_TOKEN.
	Token string
	// HTTPClient overrides the transport (TLS settings, timeouts).
	HTTPClient *http.Client
	// UserAgent names the caller in audit entries.
	UserAgent string
	// DPoP, when set, signs a DPoP proof (RFC 9449) for every request: the
	// token is sent as "Authorization: DPoP <token>" with a fresh proof, as
	// a DPoP-bound token requires, and Exchange binds the token it gets.
	DPoP Prover
}

// Client calls one keyward server. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
	ua    string
	dpop  Prover
	// proveBare: send a DPoP proof without a token (a token request).
	proveBare bool
	// nonce is the last DPoP-Nonce the server sent, shared by the copies
	// of a Client (WithToken).
	nonce *atomic.Pointer[string]
	// header is added to every request (set on copies).
	header http.Header
}

// New returns a Client. Address and Token default to $KEYWARD_ADDR and
// $KEYWARD_TOKEN.
func New(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		cfg.Address = os.Getenv("KEYWARD_ADDR")
	}
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if cfg.Token == "" {
		cfg.Token = os.Getenv("KEYWARD_TOKEN")
	}
	u, err := url.Parse(strings.TrimRight(cfg.Address, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: address %q: want http(s)://host:port", cfg.Address)
	}
	if u.User != nil {
		return nil, errors.New("client: the address must not carry credentials; use a token")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = "keyward-go-client"
	}
	return &Client{base: u, token: cfg.Token, hc: hc, ua: ua, dpop: cfg.DPoP, nonce: new(atomic.Pointer[string])}, nil
}

// Address returns the server's base URL.
func (c *Client) Address() string { return c.base.String() }

// WithToken returns a copy of c that sends token.
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.token = token
	return &cc
}

// Error is an API refusal.
type Error struct {
	Status    int            `json:"-"`
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	RequestID string         `json:"request_id"`
	Details   map[string]any `json:"details,omitempty"`
	// dpopNonce: a 401 asking for the server's DPoP nonce (use_dpop_nonce).
	dpopNonce bool
}

func (e *Error) Error() string {
	if e.Code == "" {
		if e.Message != "" && e.Message != http.StatusText(e.Status) {
			return fmt.Sprintf("keyward: HTTP %d: %s", e.Status, e.Message)
		}
		return fmt.Sprintf("keyward: HTTP %d", e.Status)
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

// IsCode reports whether err is an API error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// pageQuery is the query of one page of a list: ?limit= (when above 0) and
// ?cursor= (when set).
func pageQuery(limit int, cursor string) url.Values {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return q
}

// do sends a request. in is encoded as JSON (nil: no body; []byte: raw
// YAML; url.Values: a form).
// out, when not nil, receives the JSON response. Responses with a status in
// okStatus (default: 2xx) are success.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any, okStatus ...int) (int, error) {
	status, err := c.do1(ctx, method, path, query, in, out, okStatus...)
	if c.dpop != nil && useDPoPNonce(err) {
		// RFC 9449 §8: the server asks for its nonce (now remembered);
		// once more with a proof that carries it.
		status, err = c.do1(ctx, method, path, query, in, out, okStatus...)
	}
	return status, err
}

// useDPoPNonce reports a refusal asking for a server-provided DPoP nonce.
func useDPoPNonce(err error) bool {
	var oe *OAuthError
	var e *Error
	return errors.As(err, &oe) && oe.Code == "use_dpop_nonce" || errors.As(err, &e) && e.dpopNonce
}

func (c *Client) do1(ctx context.Context, method, path string, query url.Values, in, out any, okStatus ...int) (int, error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	if strings.Contains(path, "%") {
		u.RawPath = c.base.Path + path
		if p, err := url.PathUnescape(u.RawPath); err == nil {
			u.Path = p
		}
	}
	u.RawQuery = query.Encode()
	var body io.Reader
	contentType := ""
	switch v := in.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
		contentType = "application/yaml"
	case url.Values:
		body = strings.NewReader(v.Encode())
		contentType = "application/x-www-form-urlencoded"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return 0, fmt.Errorf("client: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
		contentType = "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	for k, v := range c.header {
		req.Header[k] = v
	}
	switch {
	case c.dpop != nil && (c.token != "" || c.proveBare):
		nonce := ""
		if c.nonce != nil {
			if n := c.nonce.Load(); n != nil {
				nonce = *n
			}
		}
		proof, err := c.dpop(method, u.String(), c.token, nonce)
		if err != nil {
			return 0, fmt.Errorf("client: signing a DPoP proof: %w", err)
		}
		if c.token != "" {
			req.Header.Set("Authorization", "DPoP "+c.token)
		}
		req.Header.Set("DPoP", proof)
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach keyward at %s: %w", c.base.Redacted(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if n := resp.Header.Get("DPoP-Nonce"); n != "" && c.nonce != nil {
		c.nonce.Store(&n)
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	for _, s := range okStatus {
		if resp.StatusCode == s {
			ok = true
		}
	}
	if dl, isDL := out.(*download); isDL && ok {
		dl.header = resp.Header
		if _, err := io.Copy(dl.w, resp.Body); err != nil {
			return resp.StatusCode, fmt.Errorf("client: reading response: %w", err)
		}
		return resp.StatusCode, nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("client: reading response: %w", err)
	}
	if !ok {
		var eb struct {
			Error *Error `json:"error"`
		}
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
			eb.Error.Status = resp.StatusCode
			eb.Error.dpopNonce = resp.StatusCode == http.StatusUnauthorized && strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`)
			return resp.StatusCode, eb.Error
		}
		var oe OAuthError // the OAuth endpoints answer RFC 6749 errors
		if json.Unmarshal(data, &oe) == nil && oe.Code != "" {
			oe.Status = resp.StatusCode
			oe.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			return resp.StatusCode, &oe
		}
		return resp.StatusCode, &Error{Status: resp.StatusCode, Message: plainMessage(data, resp.StatusCode)}
	}
	if out != nil && len(data) > 0 {
		if raw, isRaw := out.(*[]byte); isRaw {
			*raw = data
			return resp.StatusCode, nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("client: decoding response: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// download is do's out for an answer that is not JSON: its body is copied
// to w (unbounded) and its headers kept.
type download struct {
	w      io.Writer
	header http.Header
}

// plainMessage is the message of an error answer that is not keyward's
// JSON (from a proxy in front, or a server speaking TLS where plain HTTP was
// sent): its body when that is one short line of plain text, else the
// status text.
func plainMessage(body []byte, status int) string {
	s := strings.TrimSpace(string(body))
	if s == "" || len(s) > 200 || !utf8.ValidString(s) || strings.ContainsAny(s, "<>{}\r\n") {
		return http.StatusText(status)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return http.StatusText(status)
		}
	}
	return s
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

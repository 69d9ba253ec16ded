package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// OAuth2 are the settings of an integration whose upstream takes OAuth 2.0
// access tokens (RFC 6750) obtained with the client credentials grant (RFC
// 6749 §4.4). The integration's secret holds the client secret. keyward
// asks TokenURL for a token, keeps it until shortly before it expires, and
// sends it as "Authorization: Bearer TOKEN"; neither the client secret nor
// the token ever reaches a caller.
type OAuth2 struct {
	// TokenURL is the authorization server's token endpoint: https (or
	// http with allow_private), no user or fragment. The client secret is
	// sent there and nowhere else.
	TokenURL string `json:"token_url"`
	// ClientID is the client's identifier (not a secret).
	ClientID string `json:"client_id"`
	// Scopes are requested with every token (none: the server's default).
	Scopes []string `json:"scopes,omitempty"`
	// Audience, when set, is sent as the "audience" parameter (Auth0, Okta
	// and others name the API a token is for with it).
	Audience string `json:"audience,omitempty"`
	// AuthStyle is how the client authenticates to the token endpoint:
	// "basic" (HTTP basic authentication, client_secret_basic; the
	// default) or "post" (client_id and client_secret in the form,
	// client_secret_post).
	AuthStyle string `json:"auth_style,omitempty"`
}

// Bounds of the OAuth 2.0 settings and of a token endpoint's answer.
const (
	MaxClientIDBytes    = 256
	MaxScopes           = 32
	MaxScopeBytes       = 256
	MaxAudienceBytes    = 512
	maxTokenResponse    = 64 << 10
	maxAccessToken      = 16 << 10
	defaultTokenLife    = 5 * time.Minute // when the server gives no expires_in
	maxTokenEarly       = time.Minute     // a token is renewed this long before it expires, at most
	tokenFailureBackOff = 2 * time.Second // after a failed fetch, calls fail without a new one
	tokenExpiryMargin   = 5 * time.Second // a token this close to its expiry is not sent

)

// minTokenAgeForDrop: an upstream's 401 drops only a token at least this
// old (a variable for tests).
var minTokenAgeForDrop = 10 * time.Second

// ErrTokenUnavailable: the token endpoint did not issue an access token
// (refused the client, was unreachable, or answered something that is not
// a bearer token). Its messages name the endpoint's HTTP status and OAuth
// error code, never the client secret or a token.
var ErrTokenUnavailable = errors.New("the upstream's OAuth token endpoint did not issue a token")

// oauth2Client is an integration's compiled OAuth 2.0 settings.
type oauth2Client struct {
	endpoint *endpoint
	target   string // escaped path and query of the token endpoint
	clientID string
	post     bool   // client_secret_post
	form     string // grant_type, scope and audience, form-encoded

	renewing  atomic.Bool  // a renewal runs behind the calls
	mu        sync.Mutex   // one fetch at a time
	failEntry *secretEntry // the secret value a fetch failed with
	failUntil time.Time    // and until when calls fail without a new fetch
	failErr   error
}

// normalizeOAuth2 checks in.OAuth2 against in.Inject and rewrites it in
// canonical form.
func (c *compiled) normalizeOAuth2(in *Integration) error {
	o := in.OAuth2
	if c.inject.Kind != InjectOAuth2 {
		if o != nil {
			return invalid("oauth2: settings are given but inject is not oauth2")
		}
		return nil
	}
	if o == nil {
		return invalid("oauth2: inject oauth2 needs the token_url and client_id of the OAuth client")
	}
	e, err := parseEndpoint("oauth2 token_url", o.TokenURL, in.AllowPrivate, true)
	if err != nil {
		return err
	}
	if o.ClientID == "" || len(o.ClientID) > MaxClientIDBytes || !printableASCII(o.ClientID) {
		return invalid("oauth2 client_id: 1 to %d printable ASCII characters", MaxClientIDBytes)
	}
	if len(o.Scopes) > MaxScopes {
		return invalid("oauth2 scopes: at most %d", MaxScopes)
	}
	var scopes []string
	for _, s := range o.Scopes {
		if !validScope(s) {
			return invalid("oauth2 scope %q: 1 to %d printable ASCII characters, no space, '\"' or '\\\\'", printable(s), MaxScopeBytes)
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	if len(o.Audience) > MaxAudienceBytes || !printableASCII(o.Audience) {
		return invalid("oauth2 audience: up to %d printable ASCII characters", MaxAudienceBytes)
	}
	switch o.AuthStyle {
	case "":
		o.AuthStyle = "basic"
	case "basic", "post":
	default:
		return invalid("oauth2 auth_style %q: want basic or post", printable(o.AuthStyle))
	}
	o.TokenURL, o.Scopes = e.u.String(), scopes
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	if o.Audience != "" {
		form.Set("audience", o.Audience)
	}
	target := e.u.EscapedPath()
	if target == "" {
		target = "/"
	}
	if e.u.RawQuery != "" {
		target += "?" + e.u.RawQuery
	}
	c.oauth2 = &oauth2Client{endpoint: e, target: target, clientID: o.ClientID, post: o.AuthStyle == "post", form: form.Encode()}
	return nil
}

// renewBehind runs renew on its own goroutine unless one is running.
func (o *oauth2Client) renewBehind(renew func()) {
	if o.renewing.CompareAndSwap(false, true) {
		go func() {
			defer o.renewing.Store(false)
			renew()
		}()
	}
}

// validScope: scope-token of RFC 6749 §3.3 (%x21 / %x23-5B / %x5D-7E).
func validScope(s string) bool {
	if s == "" || len(s) > MaxScopeBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if ch := s[i]; ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' {
			return false
		}
	}
	return true
}

// tokenResponse is the part of a token endpoint's answer keyward reads
// (RFC 6749 §5.1 and §5.2).
type tokenResponse struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"` // a number; some servers send a string
	Error       string          `json:"error"`
}

// fetchToken asks the token endpoint for an access token with the client
// secret, and returns it with its lifetime. ctx bounds the request.
func (o *oauth2Client) fetchToken(ctx context.Context, cl *client, secret string, deadline time.Time) (string, time.Duration, error) {
	form := o.form
	h := requestHeader{src: http.Header{
		"Content-Type": {"application/x-www-form-urlencoded"},
		"Accept":       {"application/json"},
	}}
	if o.post {
		form += "&" + url.Values{"client_id": {o.clientID}, "client_secret": {secret}}.Encode()
	} else {
		// RFC 6749 §2.3.1: both form-encoded before basic authentication.
		h.inject = "Authorization"
		h.value = "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(o.clientID)+":"+url.QueryEscape(secret)))
	}
	e := o.endpoint
	resp, err := cl.roundTrip(ctx, &upstreamRequest{
		method: http.MethodPost, scheme: e.scheme, host: e.host, addr: e.addr, key: e.key, target: o.target,
		header: h, body: strings.NewReader(form), contentLength: int64(len(form)), deadline: deadline,
	})
	if err != nil {
		switch {
		case errors.Is(err, ErrAddressBlocked):
			return "", 0, fmt.Errorf("%w: %w", ErrTokenUnavailable, ErrAddressBlocked)
		case isTimeout(err) || !time.Now().Before(deadline):
			return "", 0, fmt.Errorf("%w: it did not answer in time", ErrTokenUnavailable)
		}
		return "", 0, fmt.Errorf("%w: it could not be reached", ErrTokenUnavailable)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return "", 0, fmt.Errorf("%w: reading its answer failed", ErrTokenUnavailable)
	}
	if len(body) > maxTokenResponse {
		return "", 0, fmt.Errorf("%w: its answer is larger than %d bytes", ErrTokenUnavailable, maxTokenResponse)
	}
	var tr tokenResponse
	jsonErr := json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK {
		code := "no OAuth error code"
		if jsonErr == nil && validErrorCode(tr.Error) {
			code = tr.Error
		}
		return "", 0, fmt.Errorf("%w: it answered %d (%s)", ErrTokenUnavailable, resp.StatusCode, code)
	}
	switch {
	case jsonErr != nil:
		return "", 0, fmt.Errorf("%w: its answer is not a JSON token response", ErrTokenUnavailable)
	case tr.AccessToken == "" || len(tr.AccessToken) > maxAccessToken || !tokenChars(tr.AccessToken):
		return "", 0, fmt.Errorf("%w: its answer holds no usable access_token", ErrTokenUnavailable)
	case tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer"):
		return "", 0, fmt.Errorf("%w: token_type %q is not Bearer", ErrTokenUnavailable, printable(tr.TokenType))
	}
	life := defaultTokenLife
	if len(tr.ExpiresIn) > 0 && string(tr.ExpiresIn) != "null" {
		s := strings.Trim(string(tr.ExpiresIn), `"`)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n > 10*365*24*3600 {
			return "", 0, fmt.Errorf("%w: expires_in is not a positive number of seconds", ErrTokenUnavailable)
		}
		life = time.Duration(n) * time.Second
	}
	return tr.AccessToken, life, nil
}

// renewBefore is how long before its expiry a token of lifetime life is
// replaced: a fifth of its life, at most a minute.
func renewBefore(life time.Duration) time.Duration { return min(life/5, maxTokenEarly) }

// validErrorCode: an OAuth error code (RFC 6749 §5.2 allows %x20-21 /
// %x23-5B / %x5D-7E; keyward shows only the usual letters, digits, '_',
// '-' and '.', up to 64 of them).
func validErrorCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '_' || ch == '-' || ch == '.') {
			return false
		}
	}
	return true
}

// tokenChars: an access token that can travel in a header (visible ASCII).
func tokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if ch := s[i]; ch <= 0x20 || ch >= 0x7f {
			return false
		}
	}
	return true
}

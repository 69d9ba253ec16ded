package gateway

import (
	"encoding/json"
	"fmt"
	"github.com/keyward/keyward/internal/ratelimit"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults and bounds of an integration's settings.
const (
	DefaultTimeout = 30 * time.Second
	MaxTimeout     = 10 * time.Minute
	DefaultMaxBody = 10 << 20 // 10 MiB
	MaxMaxBody     = 1 << 30  // 1 GiB
)

// Methods are the request methods the gateway forwards.
var Methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// Integration is an upstream API reachable through the gateway, the secret
// whose value is injected into every call, and what callers may ask of it.
// It holds no secret value: Secret names where the value lives.
type Integration struct {
	Name string `json:"name"`
	// Upstream is the base URL calls are sent to, e.g.
	// https://api.example.com/v2: https, or http with AllowPrivate; no
	// user, query or fragment.
	Upstream string `json:"upstream"`
	// Secret is PROJECT/ENV/PATH of the secret holding the credential.
	Secret string `json:"secret"`
	// Inject says where the credential goes (see ParseInject).
	Inject string `json:"inject"`
	// Methods callers may use (default: all of Methods).
	Methods []string `json:"methods"`
	// Paths are globs over the path below the upstream's base path
	// (default /**): "*" one segment, "**" any number.
	Paths []string `json:"paths"`
	// Timeout bounds a whole call, request and response (default 30s).
	Timeout Duration `json:"timeout"`
	// MaxBodyBytes bounds the request body (default 10 MiB).
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// StripResponseHeaders are removed from every response.
	StripResponseHeaders []string `json:"strip_response_headers"`
	// AllowPrivate lets the upstream resolve to loopback, private,
	// link-local and other internal addresses, and use plain http.
	AllowPrivate bool `json:"allow_private"`
	// Rate bounds all calls through the integration, whoever makes them
	// (N/s, N/min or N/h; empty: none), to protect the upstream's own
	// quota. CallerRate bounds the calls of each token or API key. Both
	// are counted per node.
	Rate       string `json:"rate,omitempty"`
	CallerRate string `json:"caller_rate,omitempty"`
	// OAuth2 is set when Inject is "oauth2": the upstream takes OAuth 2.0
	// access tokens, which keyward obtains with the client credentials
	// grant, using the secret as the client secret.
	OAuth2 *OAuth2 `json:"oauth2,omitempty"`
	// WebSocket lets callers open WebSocket sessions (RFC 6455) through
	// the integration: a GET with "Upgrade: websocket" is forwarded with
	// the credential injected and, once the upstream switches protocols,
	// the two connections are joined until either side closes or the
	// caller's credential is revoked or expires. Off by default.
	WebSocket bool `json:"websocket,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("30s").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return invalid("timeout: want a duration string such as \"30s\"")
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return invalid("timeout %q: want a duration such as 30s or 2m", printable(s))
	}
	*d = Duration(v)
	return nil
}

// ValidateName checks an integration name: 1 to 63 lowercase letters,
// digits and '-', not starting with '-'.
func ValidateName(name string) error {
	if name == "" {
		return invalid("integration name is empty")
	}
	if len(name) > MaxNameBytes {
		return invalid("integration name is longer than %d bytes", MaxNameBytes)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' && i > 0) {
			return invalid("integration name %q: use lowercase letters, digits and '-' (not first)", printable(name))
		}
	}
	return nil
}

// compiled is an integration ready to serve calls.
type compiled struct {
	in                  *Integration
	scheme              string
	host                string // the Host header: name, and port unless the scheme's default
	addr                string // what is dialled: name:port
	key                 string // of the client's idle pool: scheme://addr
	basePath, baseRaw   string // decoded and escaped base path, no trailing slash
	project, env, spath string
	inject              Inject
	methods             []string
	globs               []Glob
	strip               []string // canonical header names
	timeout             time.Duration
	maxBody             int64
	cred                atomic.Pointer[credential] // for the cached secret value
	rate, callerRate    ratelimit.Limit
	oauth2              *oauth2Client // with inject oauth2
}

// Normalize validates in, fills the defaults and rewrites every field in
// its canonical form (so two equal settings store equal). It returns the
// compiled form.
func (in *Integration) Normalize() (*compiled, error) {
	if err := ValidateName(in.Name); err != nil {
		return nil, err
	}
	c := &compiled{in: in}
	for _, r := range []struct {
		field string
		src   *string
		dst   *ratelimit.Limit
	}{{"rate", &in.Rate, &c.rate}, {"caller_rate", &in.CallerRate, &c.callerRate}} {
		if *r.src == "" {
			continue
		}
		lim, err := ratelimit.ParseLimit(*r.src)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, r.field, err)
		}
		*r.dst, *r.src = lim, lim.String()
	}
	if err := c.parseUpstream(in); err != nil {
		return nil, err
	}
	project, env, path, err := ParseSecretRef(in.Secret)
	if err != nil {
		return nil, err
	}
	c.project, c.env, c.spath = project, env, path
	if c.inject, err = ParseInject(in.Inject); err != nil {
		return nil, err
	}
	in.Inject = c.inject.String()
	if err := c.normalizeOAuth2(in); err != nil {
		return nil, err
	}

	if len(in.Methods) == 0 {
		in.Methods = slices.Clone(Methods)
	}
	var methods []string
	for _, m := range in.Methods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if !slices.Contains(Methods, m) {
			return nil, invalid("method %q: want one of %s", printable(m), strings.Join(Methods, ", "))
		}
		if !slices.Contains(methods, m) {
			methods = append(methods, m)
		}
	}
	slices.SortFunc(methods, func(a, b string) int { return slices.Index(Methods, a) - slices.Index(Methods, b) })
	in.Methods, c.methods = methods, methods
	if in.WebSocket && !slices.Contains(methods, http.MethodGet) {
		return nil, invalid("websocket: a WebSocket session starts with a GET; allow GET among the methods")
	}

	if len(in.Paths) == 0 {
		in.Paths = []string{"/**"}
	}
	if len(in.Paths) > MaxGlobs {
		return nil, invalid("paths: at most %d globs", MaxGlobs)
	}
	for _, p := range in.Paths {
		g, err := ParseGlob(p)
		if err != nil {
			return nil, err
		}
		c.globs = append(c.globs, g)
	}

	switch t := time.Duration(in.Timeout); {
	case t == 0:
		in.Timeout = Duration(DefaultTimeout)
	case t < time.Millisecond || t > MaxTimeout:
		return nil, invalid("timeout %s: want 1ms to %s", t, MaxTimeout)
	}
	// Stored in milliseconds.
	in.Timeout = Duration(time.Duration(in.Timeout).Truncate(time.Millisecond))
	c.timeout = time.Duration(in.Timeout)
	switch {
	case in.MaxBodyBytes == 0:
		in.MaxBodyBytes = DefaultMaxBody
	case in.MaxBodyBytes < 0 || in.MaxBodyBytes > MaxMaxBody:
		return nil, invalid("max_body_bytes %d: want 1 to %d", in.MaxBodyBytes, MaxMaxBody)
	}
	c.maxBody = in.MaxBodyBytes

	if len(in.StripResponseHeaders) > MaxStripHeaders {
		return nil, invalid("strip_response_headers: at most %d", MaxStripHeaders)
	}
	var strip []string
	for _, h := range in.StripResponseHeaders {
		if !validHeaderName(h) {
			return nil, invalid("strip_response_headers: %q is not a valid header name", printable(h))
		}
		if h = textproto.CanonicalMIMEHeaderKey(h); !slices.Contains(strip, h) {
			strip = append(strip, h)
		}
	}
	if strip == nil {
		strip = []string{}
	}
	in.StripResponseHeaders, c.strip = strip, strip
	return c, nil
}

// endpoint is a checked URL the proxy sends requests to.
type endpoint struct {
	u      *url.URL
	scheme string
	host   string // the Host header: name, and port unless the scheme's default
	addr   string // what is dialled: name:port
	key    string // scheme://addr: the client's idle pool holding its connections
}

// parseEndpoint checks a URL the proxy will call (field names it in
// errors): https, or http with allowPrivate; no user, fragment or
// backslash; a host that is a plain name or an address not internal
// (without allowPrivate); a query only with allowQuery.
func parseEndpoint(field, s string, allowPrivate, allowQuery bool) (*endpoint, error) {
	if s == "" {
		return nil, invalid("%s is required (e.g. https://api.example.com)", field)
	}
	if len(s) > MaxUpstreamBytes {
		return nil, invalid("%s: longer than %d bytes", field, MaxUpstreamBytes)
	}
	if strings.ContainsAny(s, "#\\") {
		return nil, invalid("%s: no fragment ('#') or backslash allowed", field)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, invalid("%s is not a valid URL", field)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowPrivate {
			return nil, invalid("%s: http is allowed only with allow_private (for local upstreams); use https", field)
		}
	default:
		return nil, invalid("%s: the scheme must be https (or http with allow_private)", field)
	}
	if u.User != nil || strings.Contains(u.Host, "@") {
		return nil, invalid("%s: no user or password in the URL; put the credential in a secret", field)
	}
	if u.Opaque != "" || !allowQuery && (u.RawQuery != "" || u.ForceQuery) {
		return nil, invalid("%s: no query string allowed", field)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return nil, invalid("%s: a host is required", field)
	}
	if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if !allowPrivate && Blocked(addr) {
			return nil, invalid("%s: %s is a loopback, private or otherwise internal address; set allow_private to allow it", field, addr)
		}
		if addr.Zone() != "" {
			return nil, invalid("%s: IPv6 zones are not allowed", field)
		}
	} else {
		for i := 0; i < len(host); i++ {
			ch := host[i]
			if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '.') {
				return nil, invalid("%s: host %q: use letters, digits, '-' and '.' (punycode for other names)", field, printable(host))
			}
		}
	}
	e := &endpoint{u: u, scheme: u.Scheme}
	port := map[string]string{"https": "443", "http": "80"}[u.Scheme]
	e.addr = net.JoinHostPort(host, port)
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return nil, invalid("%s: port %q: want 1 to 65535", field, printable(p))
		}
		e.addr = net.JoinHostPort(host, p)
		if p == port {
			p = "" // the Host header leaves out the scheme's default port
		}
		port = p
	} else {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	e.host = host
	e.key = poolKey(e.scheme, e.addr)
	return e, nil
}

func (c *compiled) parseUpstream(in *Integration) error {
	e, err := parseEndpoint("upstream", in.Upstream, in.AllowPrivate, false)
	if err != nil {
		return err
	}
	base, err := ParsePath(e.u.EscapedPath())
	if err != nil {
		return invalid("upstream path: %v", err)
	}
	c.scheme, c.host, c.addr, c.key = e.scheme, e.host, e.addr, e.key
	c.baseRaw = strings.TrimSuffix(base.Escaped, "/")
	c.basePath = ""
	for _, seg := range base.Segs {
		c.basePath += "/" + seg
	}
	in.Upstream = c.scheme + "://" + c.host + c.baseRaw
	return nil
}

// ParseSecretRef splits PROJECT/ENV/PATH and checks its syntax (the secret
// store checks it again, and whether it exists, when it is read).
func ParseSecretRef(ref string) (project, env, path string, err error) {
	project, rest, ok1 := strings.Cut(ref, "/")
	env, path, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 || project == "" || env == "" || path == "" {
		return "", "", "", invalid("secret %q: want PROJECT/ENV/PATH, e.g. payments/prod/stripe-key", printable(ref))
	}
	for _, n := range []string{project, env} {
		if err := validSecretName(n); err != nil {
			return "", "", "", invalid("secret %q: %v", printable(ref), err)
		}
	}
	if len(path) > 512 {
		return "", "", "", invalid("secret path is longer than 512 bytes")
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", "", invalid("secret %q: empty, '.' and '..' segments are not allowed", printable(ref))
		}
		for i := 0; i < len(seg); i++ {
			ch := seg[i]
			if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
				return "", "", "", invalid("secret %q: path segments hold letters, digits, '.', '_' and '-'", printable(ref))
			}
		}
	}
	return project, env, path, nil
}

func validSecretName(n string) error {
	if len(n) > 63 {
		return fmt.Errorf("name %q is longer than 63 bytes", printable(n))
	}
	for i := 0; i < len(n); i++ {
		ch := n[i]
		if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' && i > 0) {
			return fmt.Errorf("name %q: use lowercase letters, digits and '-'", printable(n))
		}
	}
	return nil
}

// allowsMethod reports whether callers may use method.
func (c *compiled) allowsMethod(method string) bool { return slices.Contains(c.methods, method) }

// allowsPath reports whether some glob matches the decoded segments.
func (c *compiled) allowsPath(segs []string) bool {
	for _, g := range c.globs {
		if g.Match(segs) {
			return true
		}
	}
	return false
}

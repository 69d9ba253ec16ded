package gateway

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/textproto"
	"net/url"
	"strings"
	"unicode/utf8"
)

// SecretPlaceholder is what an injection template replaces with the secret.
const SecretPlaceholder = "{{secret}}"

// Limits on the parts of an integration.
const (
	MaxNameBytes      = 63   // an integration name
	MaxUpstreamBytes  = 2048 // the upstream URL
	MaxInjectBytes    = 512  // the injection spec
	MaxParamBytes     = 128  // a header or query parameter name, a basic-auth user
	MaxGlobs          = 32   // path globs per integration
	MaxGlobBytes      = 512  // one path glob
	MaxGlobSegments   = 32   // segments of one path glob
	MaxStripHeaders   = 32   // response headers to strip
	MaxRequestPath    = 4096 // the escaped path forwarded upstream
	MaxRequestSegment = 64   // segments of that path
)

// InjectKind says where the credential goes.
type InjectKind uint8

// Injection kinds.
const (
	InjectHeader InjectKind = iota + 1 // a request header built from a template
	InjectQuery                        // a query parameter
	InjectBasic                        // HTTP basic authentication
	InjectOAuth2                       // an OAuth 2.0 access token the proxy obtains (see OAuth2)
)

// Inject is a parsed injection spec. Its textual forms are
//
//	header:NAME=TEMPLATE   e.g. header:Authorization=Bearer {{secret}}
//	query:NAME             e.g. query:key
//	basic:USER             the secret is the password; basic:{{secret}}
//	                       makes the secret the user with an empty password
//	oauth2                 the secret is an OAuth 2.0 client secret; the
//	                       access tokens it obtains go in Authorization
//
// TEMPLATE holds {{secret}} exactly once, in printable ASCII.
type Inject struct {
	Kind   InjectKind
	Name   string // header name (canonical) or query parameter name
	Prefix string // header: template text before {{secret}}
	Suffix string // header: template text after it
	User   string // basic: the user; SecretPlaceholder when the secret is the user
}

// ErrInvalid is wrapped by every validation error; messages name the field
// and never carry a secret.
var ErrInvalid = errors.New("invalid argument")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// refusedInjectHeaders cannot carry the credential: the transport owns them,
// or they are hop-by-hop and would be dropped on the way.
var refusedInjectHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Te": true, "Trailer": true, "Upgrade": true, "Expect": true,
	"Cookie": true, "Dpop": true,
}

// ParseInject parses an injection spec (see Inject).
func ParseInject(s string) (Inject, error) {
	if len(s) > MaxInjectBytes {
		return Inject{}, invalid("inject: longer than %d bytes", MaxInjectBytes)
	}
	if s == "oauth2" {
		return Inject{Kind: InjectOAuth2}, nil
	}
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Inject{}, invalid("inject %q: want header:NAME=TEMPLATE, query:NAME, basic:USER or oauth2", printable(s))
	}
	switch kind {
	case "header":
		name, tmpl, ok := strings.Cut(rest, "=")
		if !ok {
			return Inject{}, invalid("inject: header form is header:NAME=TEMPLATE, e.g. header:Authorization=Bearer {{secret}}")
		}
		if !validHeaderName(name) {
			return Inject{}, invalid("inject: %q is not a valid header name", printable(name))
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		if refusedInjectHeaders[name] || strings.HasPrefix(name, "Proxy-") || strings.HasPrefix(name, "X-Keyward-") {
			return Inject{}, invalid("inject: header %s cannot carry a credential", name)
		}
		prefix, suffix, ok := strings.Cut(tmpl, SecretPlaceholder)
		if !ok || strings.Contains(suffix, SecretPlaceholder) {
			return Inject{}, invalid("inject: the template must hold %s exactly once", SecretPlaceholder)
		}
		if !printableASCII(prefix) || !printableASCII(suffix) {
			return Inject{}, invalid("inject: the template may hold printable ASCII only")
		}
		return Inject{Kind: InjectHeader, Name: name, Prefix: prefix, Suffix: suffix}, nil
	case "query":
		if !validQueryName(rest) {
			return Inject{}, invalid("inject: query parameter name %q: use 1 to %d letters, digits, '-', '_', '.' or '~'", printable(rest), MaxParamBytes)
		}
		return Inject{Kind: InjectQuery, Name: rest}, nil
	case "basic":
		if rest != SecretPlaceholder && (len(rest) > MaxParamBytes || strings.Contains(rest, ":") || !printableASCII(rest) || strings.Contains(rest, "{{")) {
			return Inject{}, invalid("inject: basic user: up to %d printable ASCII characters without ':' (or %s)", MaxParamBytes, SecretPlaceholder)
		}
		return Inject{Kind: InjectBasic, User: rest}, nil
	}
	return Inject{}, invalid("inject %q: the kind must be header, query, basic or oauth2", printable(kind))
}

// String is the canonical spec, which ParseInject reads back.
func (in Inject) String() string {
	switch in.Kind {
	case InjectHeader:
		return "header:" + in.Name + "=" + in.Prefix + SecretPlaceholder + in.Suffix
	case InjectQuery:
		return "query:" + in.Name
	case InjectBasic:
		return "basic:" + in.User
	case InjectOAuth2:
		return "oauth2"
	}
	return ""
}

// value is the header value (header, basic) or the query value for secret.
func (in Inject) value(secret string) string {
	switch in.Kind {
	case InjectHeader:
		return in.Prefix + secret + in.Suffix
	case InjectBasic:
		if in.User == SecretPlaceholder {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte(secret+":"))
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(in.User+":"+secret))
	case InjectOAuth2:
		return "Bearer " + secret // secret: the access token
	}
	return secret
}

// Glob is a compiled path glob: segments that are literal, "*" (exactly one
// segment) or "**" (any number of segments, none included).
type Glob struct {
	src  string
	segs []string
}

// String returns the glob as written.
func (g Glob) String() string { return g.src }

// ParseGlob compiles a path glob such as /v1/users/*/orders or /v1/**.
// Literal segments hold URL path characters; "." and ".." and empty
// segments are refused ("/" alone matches only the root).
func ParseGlob(s string) (Glob, error) {
	if len(s) > MaxGlobBytes {
		return Glob{}, invalid("path glob: longer than %d bytes", MaxGlobBytes)
	}
	if !strings.HasPrefix(s, "/") {
		return Glob{}, invalid("path glob %q: must start with /", printable(s))
	}
	if s == "/" {
		return Glob{src: s}, nil
	}
	segs := strings.Split(s[1:], "/")
	if len(segs) > MaxGlobSegments {
		return Glob{}, invalid("path glob %q: more than %d segments", printable(s), MaxGlobSegments)
	}
	for _, seg := range segs {
		switch {
		case seg == "*" || seg == "**":
		case seg == "" || seg == "." || seg == "..":
			return Glob{}, invalid("path glob %q: empty, '.' and '..' segments are not allowed", printable(s))
		default:
			for i := 0; i < len(seg); i++ {
				if !isPathChar(seg[i]) {
					return Glob{}, invalid("path glob %q: segment %q: use letters, digits and -._~!$&'()+,;=:@ ('*' only as a whole segment)", printable(s), printable(seg))
				}
			}
		}
	}
	return Glob{src: s, segs: segs}, nil
}

// Match reports whether the decoded path segments match g.
func (g Glob) Match(path []string) bool {
	// Classic wildcard matching over segments, in O(len(g)·len(path)) time
	// whatever the number of "**".
	p, s := 0, 0
	star, mark := -1, 0
	for s < len(path) {
		switch {
		case p < len(g.segs) && g.segs[p] == "**":
			star, mark = p, s
			p++
		case p < len(g.segs) && (g.segs[p] == "*" || g.segs[p] == path[s]):
			p++
			s++
		case star >= 0:
			p = star + 1
			mark++
			s = mark
		default:
			return false
		}
	}
	for p < len(g.segs) && g.segs[p] == "**" {
		p++
	}
	return p == len(g.segs)
}

// isPathChar: RFC 3986 pchar without '%' (unreserved and sub-delims, ':',
// '@'), and without '*' which globs own.
func isPathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()+,;=:@", c) >= 0
}

// Path is a request path checked for forwarding: Segs are the decoded
// segments (what globs match), Escaped is the path sent upstream.
type Path struct {
	Segs    []string
	Escaped string // "/" for the root; keeps a single trailing slash
}

// ParsePath checks the escaped path a caller asked for below an
// integration (e.g. "/v1/users/42"). It refuses anything that could mean
// another path to the upstream than to the glob check: empty, "." and ".."
// segments (also "..;" which some servers read as ".."), and segments whose
// decoding holds '/', '\', '%' (double encoding), control characters or
// invalid UTF-8. Such a path is an error wrapping ErrBadPath.
func ParsePath(escaped string) (Path, error) {
	segs, escaped, err := parsePath(escaped, nil)
	if err != nil {
		return Path{}, err
	}
	return Path{Segs: segs, Escaped: escaped}, nil
}

// parsePath is ParsePath returning the fields of the Path apart, with the
// segments appended to buf when it has room for them (a caller's array,
// which then needs no allocation).
func parsePath(escaped string, buf []string) (segs []string, _ string, _ error) {
	if escaped == "" || escaped == "/" {
		return nil, "/", nil
	}
	if escaped[0] != '/' {
		return nil, "", badPath("must start with /")
	}
	if len(escaped) > MaxRequestPath {
		return nil, "", badPath("longer than %d bytes", MaxRequestPath)
	}
	body := strings.TrimSuffix(escaped[1:], "/")
	n := strings.Count(body, "/") + 1
	if n > MaxRequestSegment {
		return nil, "", badPath("more than %d segments", MaxRequestSegment)
	}
	segs = buf[:0]
	if cap(segs) < n {
		segs = make([]string, 0, n)
	}
	for raw := range strings.SplitSeq(body, "/") {
		if raw == "" {
			return nil, "", badPath("empty segment")
		}
		for i := 0; i < len(raw); i++ {
			// What net/url's EscapedPath leaves unescaped, and nothing
			// else: a path from elsewhere than a request line (a check's
			// JSON body) must not carry a '?', '#', space or raw byte
			// into the upstream's request target.
			if c := raw[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~%!$&'()*+,;=:@[]", c) >= 0) {
				return nil, "", badPath("a character that must be percent-encoded")
			}
		}
		seg, err := url.PathUnescape(raw)
		if err != nil {
			return nil, "", badPath("invalid percent-encoding")
		}
		if !utf8.ValidString(seg) {
			return nil, "", badPath("a segment is not valid UTF-8")
		}
		for i := 0; i < len(seg); i++ {
			switch c := seg[i]; {
			case c == '/' || c == '\\':
				return nil, "", badPath("encoded '/' or '\\' in a segment")
			case c == '%':
				return nil, "", badPath("'%%' in a decoded segment (double encoding)")
			case c < 0x20 || c == 0x7f:
				return nil, "", badPath("control character in a segment")
			}
		}
		if dot, _, _ := strings.Cut(seg, ";"); dot == "." || dot == ".." {
			return nil, "", badPath("'.' and '..' segments are not allowed")
		}
		segs = append(segs, seg)
	}
	return segs, escaped, nil
}

func badPath(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadPath, fmt.Sprintf(format, args...))
}

// validHeaderName: an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" || len(s) > MaxParamBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			return false
		}
	}
	return true
}

// tokenByte reports whether c may be in a token, e.g. a header name (RFC
// 9110's tchar).
func tokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func validQueryName(s string) bool {
	if s == "" || len(s) > MaxParamBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// printable shortens s and escapes what a terminal or log should not see
// raw, for error messages.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	q := fmt.Sprintf("%q", s)
	return q[1 : len(q)-1]
}

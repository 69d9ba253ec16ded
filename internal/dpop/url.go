package dpop

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// NormalizeURL returns the form of an absolute http(s) URL that htu is
// compared in (RFC 9449 §4.3, by RFC 3986 §6.2.2 and §6.2.3): query and
// fragment dropped; scheme and host lower-cased; the scheme's default port
// removed; an empty path made "/"; percent-encodings of unreserved
// characters decoded and the others upper-cased; dot segments removed.
//
// A WebSocket URL names the HTTP request of its handshake (RFC 6455 §3):
// ws and wss normalise as http and https, so an app whose library signs
// the wss:// URL it was given matches the GET the server receives.
func NormalizeURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "ws":
		scheme = "http"
	case "wss":
		scheme = "https"
	}
	if scheme != "http" && scheme != "https" {
		return "", errors.New("not an http(s) URL")
	}
	if u.Opaque != "" || u.Host == "" {
		return "", errors.New("not an absolute URL")
	}
	if u.User != nil {
		return "", errors.New("a URL with user information")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", errors.New("a URL without a host")
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	path := normalizePercent(u.EscapedPath())
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + removeDotSegments(path), nil
}

// normalizePercent decodes percent-encoded unreserved characters and
// upper-cases the hex digits of the others. p is a valid escaped path.
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			c := unhex(p[i+1])<<4 | unhex(p[i+2])
			if unreserved(c) {
				b.WriteByte(c)
			} else {
				const upper = "0123456789ABCDEF"
				b.WriteByte('%')
				b.WriteByte(upper[c>>4])
				b.WriteByte(upper[c&15])
			}
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// removeDotSegments is RFC 3986 §5.2.4 for an absolute path (one that
// starts with "/"; anything else is returned unchanged).
func removeDotSegments(p string) string {
	if !strings.HasPrefix(p, "/") || (!strings.Contains(p, "/.") && p != ".") {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

package h1

import (
	"bufio"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// The simple request head, parsed without net/textproto.
//
// In a CPU profile of the gateway benchmark http.ReadRequest took about
// 3.4 µs a request (textproto's line reads, a string per value, its header
// map, url parsing, readTransfer). Most heads the gateway sees are of one
// simple shape: an origin-form target, HTTP/1.1, CRLF lines, a few fields
// and no body or one framed by Content-Length. parseSimpleHead reads that
// shape alone, from bytes already buffered, and gives the *http.Request
// http.ReadRequest would give for the same bytes; any other head is left
// to http.ReadRequest, untouched.
// FuzzFastRequest holds the two to the same request and the same bytes
// consumed.
//
// Its economy: one string of the whole head, of which the method, target
// and values (and keys already canonical) are substrings; a header map
// sized for the field lines; and one allocation for the rest
// (simpleRequest): the request; its URL, parsed here when its path has only
// bytes that url.ParseRequestURI neither unescapes nor escapes (pathByte),
// else by that function, in an allocation of its own; one []string block
// for the values (for up to 6 fields besides Host), each key's slice capped
// at its length as textproto caps it, so a handler's append cannot reach
// another key's values; the answer's response, for serveRequest; and a
// body's reader.
//
// BenchmarkReadRequest, the gateway's head (Host and 3 fields) from a
// bufio.Reader (go1.26.8, linux/amd64, 2 shared cores, -benchmem; medians
// of five runs on a loaded machine, cpu-ns/op being the process's CPU
// time, which that load inflates less than ns/op):
//
//	fast        1233 ns/op   1110 cpu-ns/op   1280 B/op    4 allocs/op
//	readrequest 1744 ns/op   1634 cpu-ns/op   1084 B/op   11 allocs/op
//
// The verification's head with its 62-byte JSON body, head and body read
// (2026-12-06, tenth session, another machine of the same kind, three runs):
//
//	fast        2242–2524 ns/op   1328 B/op    4 allocs/op
//	readrequest 4433–5773 ns/op   1208 B/op   15 allocs/op
//
// The allocations: the head's string, the simpleRequest (with the
// response, 136 B, that a request http.ReadRequest reads gets later, in an
// allocation of its own) and the header map (two).

// maxFastLines: a head with more field lines goes to http.ReadRequest.
const maxFastLines = 64

// readSimpleRequest reads, from the bytes already buffered in br (it never
// reads), a simple request head (parseSimpleHead) and consumes it, and
// reports its Host field as scanHead does. It returns nil, with br
// untouched, for any other head.
func readSimpleRequest(br *bufio.Reader, base *http.Request) (*simpleRequest, head) {
	buf, _ := br.Peek(br.Buffered())
	sr, n, hd := parseSimpleHead(buf, base)
	if sr == nil {
		return nil, head{}
	}
	br.Discard(n)
	if sr.req.Body == &sr.body {
		sr.body = fixedBody{br: br, n: sr.req.ContentLength}
	}
	return sr, hd
}

// field is a field line of the head: where its name and (trimmed) value
// are, and what the first pass learnt of the name.
type field struct {
	name, nameEnd, value, valueEnd int32
	kind                           fieldKind
	canonical                      bool // the name is as textproto canonicalises it
}

type fieldKind uint8

const (
	otherField fieldKind = iota
	hostField
	connectionField
	pragmaField
	cacheControlField
	contentLengthField
	transferEncodingField
)

// kindOf tells the fields that http.ReadRequest reads (names in any case).
func kindOf(name []byte) fieldKind {
	switch len(name) {
	case 4:
		if asciiLowerEqual(name, "host") {
			return hostField
		}
	case 6:
		if asciiLowerEqual(name, "pragma") {
			return pragmaField
		}
	case 10:
		if asciiLowerEqual(name, "connection") {
			return connectionField
		}
	case 13:
		if asciiLowerEqual(name, "cache-control") {
			return cacheControlField
		}
	case 14:
		if asciiLowerEqual(name, "content-length") {
			return contentLengthField
		}
	case 17:
		if asciiLowerEqual(name, "transfer-encoding") {
			return transferEncodingField
		}
	}
	return otherField
}

// simpleRequest is, in one allocation, a request, its URL (unless
// url.ParseRequestURI had to make it), the values of its header (for up
// to len(strs) fields besides Host, which goes to req.Host), its
// answer's response, which serveRequest fills in, and the body's reader
// when it has one. Nothing of it is reused: a fresh one is made for every
// request. (Its size, 696 bytes, and the 8 of malloc's header of an
// object this large, are 704, a malloc size class: a seventh value would
// take it to the next, 768.)
type simpleRequest struct {
	req  http.Request
	url  url.URL
	strs [6]string
	resp response
	body fixedBody // req.Body when the head declares a body
}

// fixedBody is a request body framed by its Content-Length, the n bytes
// left of it in br, read as http.ReadRequest's is (net/http's body over an
// io.LimitedReader): EOF with the last byte, io.ErrUnexpectedEOF once
// when the stream ends before it, EOF ever after. Close does nothing: the
// server decides what becomes of an unread rest (response.settleBody), as
// it does for a body http.ReadRequest made, whose Close it never calls.
type fixedBody struct {
	br *bufio.Reader
	n  int64
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	switch {
	case err == io.EOF && b.n > 0:
		b.n, err = 0, io.ErrUnexpectedEOF
	case err == nil && n > 0 && b.n == 0:
		err = io.EOF
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }

// pathByte: the bytes that url.ParseRequestURI takes into a path as they
// are, neither unescaped nor escaped again (so it sets no RawPath). Rather
// than a copy of net/url's tables, each byte is asked of the function
// itself; '%' (an escape) and '?' (the query's start) are not among them.
var pathByte = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		p := "/" + string(c)
		if u, err := url.ParseRequestURI(p); err == nil && c != '?' && c != '%' &&
			*u == (url.URL{Path: p}) {
			t[c] = true
		}
	}
	return t
}()

// parseTarget sets u, a zero URL, to what url.ParseRequestURI makes of
// target, an origin-form target of visible ASCII bytes, and reports
// whether it could: it cannot for a path with a byte outside pathByte.
func parseTarget(u *url.URL, target string) bool {
	path, query, hasQuery := cutByte(target, '?')
	for i := 0; i < len(path); i++ {
		if !pathByte[path[i]] {
			return false
		}
	}
	u.Path = path
	switch {
	case hasQuery && query == "":
		// the only '?' ends the target
		u.ForceQuery = true
	case hasQuery:
		u.RawQuery = query
	}
	return true
}

// parseSimpleHead parses the request head at the start of b when it is
// simple, and returns the request, the head's length (up to and
// including its empty line) and its Host field as scanHead reports it;
// otherwise nil. Simple is:
//
//   - the request line: a method of upper-case letters, one SP, a target
//     that starts with '/' and has only visible ASCII bytes, one SP,
//     "HTTP/1.1";
//   - every line ends in CRLF; the head's empty line is in b;
//   - at most maxFastLines field lines, each a name of token bytes, ':'
//     right after it, and a value without control bytes but HTAB (so no
//     obs-fold, no bare CR or LF);
//   - framing of one kind only: no Transfer-Encoding field, and no
//     Content-Length field or exactly one, of 1 to 18 digits (nothing
//     else, so no sign and no overflow to judge);
//   - at most one Host field (http.ReadRequest refuses two);
//   - url.ParseRequestURI accepts the target.
//
// For that shape http.ReadRequest's result is fixed: HTTP/1.1, the URL of
// url.ParseRequestURI(target), the header of textproto's ReadMIMEHeader
// (canonical keys, values trimmed of SP and HTAB, in order) less the Host
// field, Host from that field, Close from a "close" token in Connection,
// Pragma's Cache-Control fix, and ContentLength 0 and Body http.NoBody
// unless the Content-Length is above 0: then that ContentLength, and a
// body of that many bytes (fixedBody, whose reader readSimpleRequest
// sets) where http.ReadRequest gives its own over an io.LimitedReader. The
// request's other fields are base's (the connection's context, RemoteAddr
// and TLS), zero when base is nil.
func parseSimpleHead(b []byte, base *http.Request) (*simpleRequest, int, head) {
	// first pass: the shape, where the parts are and the fields that
	// http.ReadRequest reads, without allocating
	i := 0
	for i < len(b) && 'A' <= b[i] && b[i] <= 'Z' {
		i++
	}
	if i == 0 || i >= len(b) || b[i] != ' ' {
		return nil, 0, head{}
	}
	methodEnd := i
	i++
	target := i
	if i >= len(b) || b[i] != '/' {
		return nil, 0, head{}
	}
	for i < len(b) && '!' <= b[i] && b[i] <= '~' {
		i++
	}
	targetEnd := i
	const proto = " HTTP/1.1\r\n"
	if len(b)-i < len(proto) || string(b[i:i+len(proto)]) != proto {
		return nil, 0, head{}
	}
	i += len(proto)
	var fields [maxFastLines]field
	n := 0
	host, pragma := -1, -1     // the Host field, the first Pragma field
	contentLength := int64(-1) // its Content-Length field's value; -1: none
	cacheControl := false
	for {
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			i += 2
			break
		}
		if n == maxFastLines {
			return nil, 0, head{}
		}
		f := &fields[n]
		f.name = int32(i)
		// textproto's test of a canonical key: upper case first and
		// after '-', lower case elsewhere
		canonical, upper := true, true
		for i < len(b) && tokenByte[b[i]] {
			c := b[i]
			if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
				canonical = false
			}
			upper = c == '-'
			i++
		}
		if int32(i) == f.name || i >= len(b) || b[i] != ':' {
			return nil, 0, head{}
		}
		f.nameEnd = int32(i)
		f.canonical = canonical
		i++
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		f.value = int32(i)
		end := i
		for i < len(b) && (b[i] >= ' ' && b[i] != 0x7f || b[i] == '\t') {
			if b[i] != ' ' && b[i] != '\t' {
				end = i + 1
			}
			i++
		}
		if i+1 >= len(b) || b[i] != '\r' || b[i+1] != '\n' {
			return nil, 0, head{}
		}
		f.valueEnd = int32(end)
		i += 2
		switch f.kind = kindOf(b[f.name:f.nameEnd]); f.kind {
		case hostField:
			if host >= 0 {
				return nil, 0, head{}
			}
			host = n
		case pragmaField:
			if pragma < 0 {
				pragma = n
			}
		case cacheControlField:
			cacheControl = true
		case contentLengthField:
			// one, of 1 to 18 digits (two even alike are deduplicated
			// by http.ReadRequest, a sign or a longer number refused or
			// checked for overflow by it: left to it)
			v := b[f.value:f.valueEnd]
			if contentLength >= 0 || len(v) == 0 || len(v) > 18 {
				return nil, 0, head{}
			}
			contentLength = 0
			for _, c := range v {
				if c < '0' || c > '9' {
					return nil, 0, head{}
				}
				contentLength = contentLength*10 + int64(c-'0')
			}
		case transferEncodingField:
			return nil, 0, head{}
		}
		n++
	}

	// second pass: the request, from one string of the head
	text := string(b[:i])
	sr := new(simpleRequest)
	if base != nil {
		sr.req = *base
	}
	u := &sr.url
	if !parseTarget(u, text[target:targetEnd]) {
		var err error
		if u, err = url.ParseRequestURI(text[target:targetEnd]); err != nil {
			return nil, 0, head{}
		}
	}
	values := n // the header's values: the fields but Host
	if host >= 0 {
		values--
	}
	req, strs := &sr.req, sr.strs[:0]
	if values <= len(sr.strs) {
		strs = sr.strs[:values]
	} else {
		strs = make([]string, values)
	}
	h := make(http.Header, n)
	closing := false
	for _, f := range fields[:n] {
		v := text[f.value:f.valueEnd]
		switch f.kind {
		case hostField:
			// http.ReadRequest drops it from the header, for req.Host
			continue
		case connectionField:
			closing = closing || valueHasToken(v, "close")
		}
		key := text[f.name:f.nameEnd]
		if !f.canonical {
			key = textproto.CanonicalMIMEHeaderKey(key)
		}
		// as textproto: a key's first value in the block, its slice
		// capped, a second appended
		if vv := h[key]; vv == nil {
			vv, strs = strs[:1:1], strs[1:]
			vv[0] = v
			h[key] = vv
		} else {
			h[key] = append(vv, v)
		}
	}
	// net/http's fixPragmaCacheControl
	if pragma >= 0 && !cacheControl {
		if f := fields[pragma]; string(b[f.value:f.valueEnd]) == "no-cache" {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	// req is new, so zero but for base's fields: the others are set one
	// by one, where a composite literal would be copied whole (under a
	// write barrier for every pointer while the GC runs)
	req.Method = text[:methodEnd]
	req.URL = u
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, 1
	req.Header = h
	req.Body = http.NoBody
	if contentLength > 0 {
		// as http.ReadRequest: a body of that length (readSimpleRequest
		// gives it its reader); of none, no body at all
		req.ContentLength = contentLength
		req.Body = &sr.body
	}
	req.Host = u.Host
	req.RequestURI = text[target:targetEnd]
	req.Close = closing // net/http's shouldClose for HTTP/1.1
	var hd head
	if host >= 0 {
		v := text[fields[host].value:fields[host].valueEnd]
		if req.Host == "" {
			req.Host = v
		}
		// one line, its value trimmed as scanHead trims it
		hd = head{hosts: 1, hostValid: validHost(b[fields[host].value:fields[host].valueEnd]), hostText: v != ""}
	}
	return sr, i, hd
}

// valueHasToken reports whether v, a comma-separated list, has token, in
// any ASCII case (httpguts.HeaderValuesContainsToken of one value, as
// http.ReadRequest sets Close). token is lower-case ASCII.
func valueHasToken(v, token string) bool {
	for {
		elem, rest, more := cutByte(v, ',')
		// of equal byte length, EqualFold folds ASCII only (a non-ASCII
		// letter takes two bytes or more)
		if e := trimOWS(elem); len(e) == len(token) && strings.EqualFold(e, token) {
			return true
		}
		if !more {
			return false
		}
		v = rest
	}
}

func cutByte(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// read reads the upstream's answer head into a when it is the common,
// simple kind and already wholly in br's buffer: "HTTP/1.1", a final
// status whose answer has a body, a body framed by one Content-Length,
// CRLF line ends, header fields without folding or control bytes, and no
// Transfer-Encoding, Trailer or "Connection: close". a.resp is then what
// http.ReadResponse would return for the same bytes (held to it by
// FuzzFastResponse), and read consumes the same bytes. Anything else returns
// false with br untouched, for http.ReadResponse.
//
// It exists for its cost: on a small proxied call http.ReadResponse
// (textproto's header reader, a string per value, its transfer reader)
// was 6% of keyward's CPU. Here a head is one string, the header keys and
// values are slices of it, and the response, its body and the values of up
// to 8 fields are one allocation, which the client also makes hold the
// body's connection bookkeeping, and a key already canonical is not
// canonicalised again (BenchmarkReadResponse: 4 allocations and
// 0.54-0.57 µs against ReadResponse's 10 and 0.88-0.93 µs).
func (a *fastAnswer) read(br *bufio.Reader, req *http.Request) bool {
	if req.Method == http.MethodHead {
		return false // no body whatever Content-Length says
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return false
	}
	head := buf[:end+2] // each line ends in CRLF
	nl := bytes.IndexByte(head, '\n')
	if nl < 1 || head[nl-1] != '\r' {
		return false
	}
	line := head[:nl-1]
	// "HTTP/1.1 200" or "HTTP/1.1 200 reason"
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' {
		return false
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 || code == http.StatusNoContent || code == http.StatusNotModified {
		return false
	}
	for _, c := range line[12:] {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	fields := head[nl+1:]
	n := bytes.Count(fields, []byte("\n"))
	if n > maxFastFields || bytes.Count(fields, []byte("\r")) != n {
		return false // bare CR or LF (and each LF follows a CR: checked below)
	}
	s := string(head) // the one copy: keys and values are slices of it
	strs := a.strs[:]
	if n > len(strs) {
		strs = make([]string, n)
	}
	h := make(http.Header, n)
	length := int64(-1)
	for rest := s[nl+1:]; rest != ""; {
		i := strings.IndexByte(rest, '\n')
		if i < 1 || rest[i-1] != '\r' {
			return false // bare LF
		}
		kv := rest[:i-1]
		rest = rest[i+1:]
		colon := strings.IndexByte(kv, ':')
		if colon <= 0 {
			return false
		}
		k, v := kv[:colon], trimOWS(kv[colon+1:])
		// Token bytes only; canonical (as textproto.CanonicalMIMEHeaderKey
		// judges it) unless a letter's case says otherwise.
		canonical, upper := true, true
		for j := 0; j < len(k); j++ {
			c := k[j]
			if !tokenBytes[c] {
				return false
			}
			if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
				canonical = false
			}
			upper = c == '-'
		}
		for j := 0; j < len(v); j++ {
			if c := v[j]; c < ' ' && c != '\t' || c == 0x7f {
				return false
			}
		}
		if !canonical {
			k = textproto.CanonicalMIMEHeaderKey(k)
		}
		switch k {
		case "Transfer-Encoding", "Trailer", "Pragma":
			return false // framing left to ReadResponse; Pragma: it may add Cache-Control
		case "Connection":
			if hasCloseToken(v) {
				return false // ReadResponse then removes the field
			}
		case "Content-Length":
			if length >= 0 || v == "" || len(v) > 18 {
				return false
			}
			length = 0
			for j := 0; j < len(v); j++ {
				if v[j] < '0' || v[j] > '9' {
					return false
				}
				length = length*10 + int64(v[j]-'0')
			}
		}
		if vv := h[k]; vv == nil {
			vv, strs = strs[:1:1], strs[1:]
			vv[0] = v
			h[k] = vv
		} else {
			h[k] = append(vv, v)
		}
	}
	if length < 0 {
		return false // ends with the connection: rare, left to ReadResponse
	}
	a.resp = http.Response{
		Status: s[9 : nl-1], StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: length, Request: req, Body: http.NoBody,
	}
	br.Discard(end + 4)
	if length > 0 {
		a.body = lengthBody{r: br, n: length}
		a.resp.Body = &a.body
	}
	return true
}

// fastAnswer is a response, its body and the values of up to 8 header
// fields in one allocation.
type fastAnswer struct {
	resp http.Response
	body lengthBody
	strs [8]string
}

// tokenBytes holds the bytes of an RFC 9110 token (tokenByte) by value.
var tokenBytes = func() (t [256]bool) {
	for c := range t {
		t[c] = tokenByte(byte(c))
	}
	return t
}()

// maxFastFields: an answer head with more field lines goes to
// http.ReadResponse.
const maxFastFields = 100

// trimOWS trims spaces and tabs at both ends, as textproto does to values.
func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// hasCloseToken reports whether a Connection value lists "close", read as
// net/http reads it (comma-separated tokens, any ASCII case, spaces
// around: "cloſe" is not "close").
func hasCloseToken(v string) bool {
	for f := range strings.SplitSeq(v, ",") {
		// Of equal byte length, EqualFold folds ASCII only (a non-ASCII
		// letter takes two bytes or more).
		if f = trimOWS(f); len(f) == len("close") && strings.EqualFold(f, "close") {
			return true
		}
	}
	return false
}

// lengthBody is a response body of n bytes: like net/http's, it returns
// io.EOF with its last bytes, so a reader learns the end without another
// call, and io.ErrUnexpectedEOF when the connection ends before it.
type lengthBody struct {
	r *bufio.Reader
	n int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	switch {
	case b.n == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }

package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"time"
)

// head is what the server checks of a request's Host field lines, which
// http.ReadRequest folds into Request.Host and then drops: RFC 9112 §3.2
// wants exactly one, with a valid value, in every HTTP/1.1 request.
type head struct {
	hosts     int  // Host field lines
	hostValid bool // the first one's value has only bytes a host may have
	// hostText: the first one's value, as far as read, is not empty (a
	// continuation line, obs-fold, then adds a space to it)
	hostText bool
}

// scanHead waits until the request's head (up to its empty line) is in
// br's buffer, without consuming it, and reads its Host lines there. A
// head larger than the buffer moves the connection to a buffer as large as
// the head limit. When the head cannot be read whole (the connection ended,
// timed out or reached the limit) it returns a zero head and no error:
// http.ReadRequest then reports what went wrong, as it would without this
// scan.
func (c *conn) scanHead(t0 time.Time) (head, error) {
	waiting := false
	for {
		n := c.br.Buffered()
		buf, _ := c.br.Peek(n)
		if h, ok := scanHead(buf); ok {
			return h, nil
		}
		if n == c.br.Size() {
			if int64(n) >= c.srv.headReadLimit() {
				return head{}, errHeadTooLarge
			}
			c.grow()
			continue
		}
		if !waiting {
			// the head's reads from now on can block: bound them (a head
			// already buffered changes no deadline)
			c.setReadDeadline(t0, c.srv.headerTimeout())
			waiting = true
		}
		if _, err := c.br.Peek(n + 1); err != nil {
			return head{}, nil
		}
	}
}

// grow moves the connection to a read buffer twice as large, up to the
// head limit, keeping what is buffered (the full buffer holds all that
// its reader gave, so the rest comes from c.lr). Growing by steps keeps
// what a connection holds near what its client sent.
func (c *conn) grow() {
	buf, _ := c.br.Peek(c.br.Buffered())
	rest := io.MultiReader(bytes.NewReader(bytes.Clone(buf)), &c.lr)
	size := min(2*int64(c.br.Size()), c.srv.headReadLimit())
	if !c.bigHead {
		c.br.Reset(nil)
		readerPool.Put(c.br)
	}
	c.br = bufio.NewReaderSize(rest, int(size))
	c.bigHead = true
}

// scanHead reads a request head's Host lines in b, which starts with the
// request line; ok is false when b does not hold the whole head. Lines end
// as net/textproto ends them (LF, with an optional CR before it).
func scanHead(b []byte) (h head, ok bool) {
	first, afterHost := true, false
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return head{}, false
		}
		line := b[:i]
		b = b[i+1:]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		switch {
		case first:
			first = false
		case len(line) == 0:
			return h, true
		case line[0] == ' ' || line[0] == '\t':
			if afterHost && h.hosts == 1 {
				// net/textproto joins the lines with a space and trims
				// the value's front: only a value empty so far stays
				// without one
				v := bytes.Trim(line, " \t")
				h.hostValid = !h.hostText && validHost(v)
				h.hostText = h.hostText || len(v) > 0
			}
		default:
			afterHost = len(line) >= 5 && asciiLowerEqual(line[:5], "host:")
			if afterHost {
				h.hosts++
				if h.hosts == 1 {
					v := bytes.Trim(line[5:], " \t")
					h.hostValid, h.hostText = validHost(v), len(v) > 0
				}
			}
		}
	}
}

// asciiLowerEqual reports whether b, lower-cased, is lower.
func asciiLowerEqual(b []byte, lower string) bool {
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// checkHost makes net/http's server's checks of the Host field (RFC 9112
// §3.2): present in HTTP/1.1, valid. http.ReadRequest itself refuses two
// Host lines; the case is kept so the check does not depend on that. A
// continued (obs-fold) Host line is checked as net/textproto joins it.
func (h head) checkHost(req *http.Request) error {
	h2Upgrade := req.Method == "PRI" && len(req.Header) == 0 && req.URL.Path == "*" && req.Proto == "HTTP/2.0"
	switch {
	case h.hosts == 0 && req.ProtoAtLeast(1, 1) && !h2Upgrade && req.Method != http.MethodConnect:
		return statusError{http.StatusBadRequest, "missing required Host header"}
	case h.hosts > 1:
		return statusError{http.StatusBadRequest, "too many Host headers"}
	case h.hosts == 1 && !h.hostValid:
		return statusError{http.StatusBadRequest, "malformed Host header"}
	}
	return nil
}

// validHost reports whether every byte of h may appear in a Host value
// (RFC 3986's reg-name, IP literals and port; as net/http's server, which
// is lenient about their order).
func validHost(h []byte) bool {
	for _, c := range h {
		if !hostByte[c] {
			return false
		}
	}
	return true
}

// hostByte: the bytes of RFC 3986's host and port, as net/http's server
// takes them.
var hostByte = alnumAnd("!$%&'()*+,-.:;=[]_~")

// alnumAnd is the table of ASCII letters and digits and the bytes of extra.
func alnumAnd(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range extra {
		t[c] = true
	}
	return t
}

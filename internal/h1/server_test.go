package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testtls"
)

// serveTest starts s on a loopback port and closes it when the test ends;
// served receives what Serve returned. A nil Log drops the server's log.
func serveTest(t *testing.T, s *Server) (addr string, served <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String(), errc
}

// client is a raw connection to a server, for byte-level control of what
// is sent and when.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second)) // the bound of every wait below
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// answer reads one answer to a request of method, with its whole body.
func (c *client) answer(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("reading the answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading the answer's body: %v", err)
	}
	return resp, string(body)
}

// closed asserts that the server closes the connection with nothing more
// to read.
func (c *client) closed() {
	c.t.Helper()
	b, err := c.br.ReadByte()
	var ne net.Error
	switch {
	case err == nil:
		rest, _ := c.br.Peek(c.br.Buffered())
		c.t.Fatalf("the connection goes on: read %q", append([]byte{b}, rest...))
	case errors.As(err, &ne) && ne.Timeout():
		c.t.Fatal("the server did not close the connection")
	}
}

// errs collects what a handler saw, for the test to check after.
type errs chan error

func (e errs) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not report")
		return nil
	}
}

// waitFor fails the test if ch is not closed within a few seconds.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestKeepAlive(t *testing.T) {
	addr, _ := serveTest(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, r.URL.Path)
	})})

	t.Run("sequential and pipelined", func(t *testing.T) {
		c := dial(t, addr)
		for _, p := range []string{"/a", "/b"} {
			c.send("GET " + p + " HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp, body := c.answer("GET"); body != p || resp.Close {
				t.Fatalf("GET %s: body %q close=%v", p, body, resp.Close)
			}
		}
		c.send("GET /c HTTP/1.1\r\nHost: a\r\n\r\nGET /d HTTP/1.1\r\nHost: a\r\n\r\n")
		for _, p := range []string{"/c", "/d"} {
			if resp, body := c.answer("GET"); body != p || resp.Close {
				t.Fatalf("pipelined GET %s: body %q close=%v", p, body, resp.Close)
			}
		}
	})
	t.Run("client close", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
		c.answer("GET")
		c.send("GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, body := c.answer("GET")
		if body != "/last" || !resp.Close { // (an HTTP/1.1 answer's Close: it says Connection: close)
			t.Fatalf("body %q close=%v", body, resp.Close)
		}
		c.closed()
	})
	t.Run("handler close", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /close HTTP/1.1\r\nHost: a\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, body := c.answer("GET")
		if body != "/close" || !resp.Close {
			t.Fatalf("body %q close=%v", body, resp.Close)
		}
		c.closed()
	})
}

// bigBody is larger than what the server holds back to give an answer a
// Content-Length.
var bigBody = func() string {
	var b strings.Builder
	for i := 0; b.Len() < 3*bufferBeforeCommit; i++ {
		fmt.Fprintf(&b, "%d,", i)
	}
	return b.String()
}()

func TestAnswerFraming(t *testing.T) {
	writeErr := make(errs, 10)
	addr, _ := serveTest(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "hello")
		case "/big":
			for b := bigBody; b != ""; {
				n := min(len(b), 1000)
				io.WriteString(w, b[:n])
				b = b[n:]
			}
		case "/length":
			w.Header().Set("Content-Length", fmt.Sprint(len(bigBody)))
			io.WriteString(w, bigBody[:100])
			io.WriteString(w, bigBody[100:])
		case "/over":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hel")
			_, err := io.WriteString(w, "lo world")
			writeErr <- err
		case "/under":
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "short")
		case "/204", "/304":
			w.Header().Set("Content-Length", "1")
			code := http.StatusNoContent
			if r.URL.Path == "/304" {
				code = http.StatusNotModified
			}
			w.WriteHeader(code)
			_, err := io.WriteString(w, "x")
			writeErr <- err
		case "/inject":
			w.Header().Set("X-A", "a\r\nX-Injected: 1")
			w.Header().Set("X-B", "b\nX-Injected: 2\r\n\r\nbody")
			w.Header()["X-C\r\nX-Injected"] = []string{"3"}
			io.WriteString(w, "ok")
		}
	})})

	t.Run("small body gets a Content-Length", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /small HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, body := c.answer("GET")
		if body != "hello" || resp.ContentLength != 5 || resp.TransferEncoding != nil {
			t.Fatalf("body %q Content-Length %d Transfer-Encoding %q", body, resp.ContentLength, resp.TransferEncoding)
		}
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil || time.Since(d).Abs() > time.Minute {
			t.Fatalf("Date %q: %v", resp.Header.Get("Date"), err)
		}
	})
	t.Run("large body is chunked", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, body := c.answer("GET")
		if body != bigBody || resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
			t.Fatalf("body of %d bytes (want %d) Content-Length %d Transfer-Encoding %q", len(body), len(bigBody), resp.ContentLength, resp.TransferEncoding)
		}
		if _, body := c.answer("GET"); body != "hello" {
			t.Fatalf("next answer %q", body)
		}
	})
	t.Run("handler's Content-Length is kept", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /length HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, body := c.answer("GET")
		if body != bigBody || resp.ContentLength != int64(len(bigBody)) || resp.TransferEncoding != nil {
			t.Fatalf("body of %d bytes, Content-Length %d Transfer-Encoding %q", len(body), resp.ContentLength, resp.TransferEncoding)
		}
	})
	t.Run("more than Content-Length", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /over HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeErr.next(t); err != http.ErrContentLength {
			t.Fatalf("the write past Content-Length returned %v", err)
		}
		// what was written in bounds went out; the client must see the
		// answer end short rather than take the next one as its rest
		body, err := io.ReadAll(resp.Body)
		if string(body) != "hel" || err != io.ErrUnexpectedEOF {
			t.Fatalf("body %q, err %v; want %q cut short", body, err, "hel")
		}
		c.closed()
	})
	t.Run("less than Content-Length", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /under HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if string(body) != "short" || err != io.ErrUnexpectedEOF {
			t.Fatalf("body %q, err %v; want %q cut short", body, err, "short")
		}
		c.closed()
	})
	t.Run("HEAD", func(t *testing.T) {
		c := dial(t, addr)
		// the answers to the HEADs carry no body: the GET's is next
		c.send("HEAD /small HTTP/1.1\r\nHost: a\r\n\r\nHEAD /big HTTP/1.1\r\nHost: a\r\n\r\nHEAD /length HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := c.answer("HEAD"); resp.ContentLength != 5 {
			t.Errorf("HEAD /small: Content-Length %d, want the GET's", resp.ContentLength)
		}
		c.answer("HEAD")
		if resp, _ := c.answer("HEAD"); resp.ContentLength != int64(len(bigBody)) {
			t.Errorf("HEAD /length: Content-Length %d, want the handler's", resp.ContentLength)
		}
		if _, body := c.answer("GET"); body != "hello" {
			t.Fatalf("the GET after the HEADs: %q", body)
		}
	})
	for _, code := range []int{204, 304} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			c := dial(t, addr)
			c.send(fmt.Sprintf("GET /%d HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n", code))
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil || resp.StatusCode != code {
				t.Fatalf("answer %v, %v", resp, err)
			}
			if err := writeErr.next(t); err != http.ErrBodyNotAllowed {
				t.Fatalf("Write on a %d: %v", code, err)
			}
			if code == 204 && resp.Header.Get("Content-Length") != "" {
				t.Errorf("a 204 with Content-Length %q", resp.Header.Get("Content-Length"))
			}
			// the next answer starts right after the head
			if _, body := c.answer("GET"); body != "hello" {
				t.Fatalf("the answer after the %d: %q", code, body)
			}
		})
	}
	t.Run("CR and LF in header values", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /inject HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, body := c.answer("GET")
		for k := range resp.Header {
			if strings.Contains(strings.ToLower(k), "injected") {
				t.Errorf("injected header %q: %q", k, resp.Header[k])
			}
		}
		if body != "ok" || !strings.HasPrefix(resp.Header.Get("X-A"), "a") || !strings.HasPrefix(resp.Header.Get("X-B"), "b") {
			t.Errorf("body %q, X-A %q, X-B %q", body, resp.Header.Get("X-A"), resp.Header.Get("X-B"))
		}
		if _, body := c.answer("GET"); body != "hello" {
			t.Fatalf("the next answer: %q", body)
		}
	})
}

func TestHTTP10(t *testing.T) {
	addr, _ := serveTest(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			io.WriteString(w, bigBody)
			return
		}
		io.WriteString(w, "hello")
	})})

	t.Run("closes without keep-alive", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET / HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n")
		resp, body := c.answer("GET")
		if resp.Proto != "HTTP/1.0" || body != "hello" || !resp.Close {
			t.Fatalf("%s %q close=%v", resp.Proto, body, resp.Close)
		}
		c.closed()
	})
	t.Run("keep-alive with a known length", func(t *testing.T) {
		c := dial(t, addr)
		for range 2 {
			c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
			resp, body := c.answer("GET")
			if body != "hello" || resp.Close || resp.ContentLength != 5 || resp.Header.Get("Connection") != "keep-alive" {
				t.Fatalf("%q close=%v Content-Length %d Connection %q", body, resp.Close, resp.ContentLength, resp.Header.Get("Connection"))
			}
		}
	})
	t.Run("unknown length ends with the connection", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, body := c.answer("GET") // read to EOF
		if body != bigBody || resp.ContentLength != -1 || resp.TransferEncoding != nil || !resp.Close {
			t.Fatalf("%d bytes (want %d) Content-Length %d Transfer-Encoding %q close=%v", len(body), len(bigBody), resp.ContentLength, resp.TransferEncoding, resp.Close)
		}
		c.closed()
	})
}

func TestUnreadRequestBody(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	afterClose := make(errs, 1)
	addr, _ := serveTest(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.URL.Path == "/close" {
			head := make([]byte, 10)
			io.ReadFull(r.Body, head)
			r.Body.Close()
			_, err := r.Body.Read(head)
			afterClose <- err
		}
		io.WriteString(w, "answer to "+r.URL.Path)
	})})
	seen := func() []string {
		mu.Lock()
		defer mu.Unlock()
		p := paths
		paths = nil
		return p
	}

	// a body of requests, for a server that would parse it as such
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	body := strings.Repeat(smuggled, (10<<10)/len(smuggled))
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	for name, req := range map[string]string{
		"Content-Length": fmt.Sprintf("POST /unread HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", len(body), body),
		"chunked":        "POST /unread HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked,
	} {
		t.Run("small, "+name, func(t *testing.T) {
			c := dial(t, addr)
			c.send(req)
			if resp, _ := c.answer("POST"); resp.Close {
				t.Fatal("the connection ends after a small unread body")
			}
			c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
			if _, b := c.answer("GET"); b != "answer to /next" {
				t.Fatalf("the next answer: %q", b)
			}
			if p := seen(); len(p) != 2 || p[0] != "/unread" || p[1] != "/next" {
				t.Fatalf("the handler saw %q", p)
			}
		})
	}

	t.Run("large", func(t *testing.T) {
		c := dial(t, addr)
		n := maxPostHandlerReadBytes + 50<<10
		go func() {
			fmt.Fprintf(c.c, "POST /unread HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", n)
			c.c.Write(bytes.Repeat([]byte(smuggled), n/len(smuggled)+1)[:n])
		}()
		resp, b := c.answer("POST")
		if b != "answer to /unread" || !resp.Close {
			t.Fatalf("%q close=%v", b, resp.Close)
		}
		c.closed()
		if p := seen(); len(p) != 1 {
			t.Fatalf("the handler saw %q", p)
		}
	})

	t.Run("endless, closed by the handler", func(t *testing.T) {
		c := dial(t, addr)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			io.WriteString(c.c, "POST /close HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
			chunk := fmt.Sprintf("%x\r\n%s\r\n", 32<<10, bytes.Repeat([]byte("x"), 32<<10))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := io.WriteString(c.c, chunk); err != nil {
					return
				}
			}
		}()
		// the answer comes although the body never ends
		resp, b := c.answer("POST")
		if b != "answer to /close" || !resp.Close {
			t.Fatalf("%q close=%v", b, resp.Close)
		}
		if err := afterClose.next(t); err != http.ErrBodyReadAfterClose {
			t.Fatalf("Read after Close: %v", err)
		}
		c.closed()
		seen()
	})
}

func TestExpectContinue(t *testing.T) {
	called := make(chan string, 10)
	addr, _ := serveTest(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called <- r.URL.Path
		if r.URL.Path == "/read" {
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
			return
		}
		io.WriteString(w, "not read")
	})})

	t.Run("read", func(t *testing.T) {
		c := dial(t, addr)
		c.send("POST /read HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil || resp.StatusCode != http.StatusContinue {
			t.Fatalf("first answer %v, %v; want 100 Continue", resp, err)
		}
		c.send("hello")
		resp, body := c.answer("POST")
		if resp.StatusCode != 200 || body != "hello" || resp.Close {
			t.Fatalf("%d %q close=%v", resp.StatusCode, body, resp.Close)
		}
		c.send("GET /other HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, body := c.answer("GET"); body != "not read" {
			t.Fatalf("the next answer: %q", body)
		}
	})
	t.Run("not read", func(t *testing.T) {
		c := dial(t, addr)
		// the body is never sent: the client waits for 100 Continue or
		// the answer
		c.send("POST /ignore HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		resp, body := c.answer("POST")
		if resp.StatusCode != 200 || body != "not read" || !resp.Close {
			t.Fatalf("%d %q close=%v; want the handler's answer and the end of the connection", resp.StatusCode, body, resp.Close)
		}
		c.closed()
	})
	t.Run("HTTP/1.0", func(t *testing.T) {
		c := dial(t, addr)
		c.send("POST /read HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
		resp, body := c.answer("POST")
		if resp.StatusCode != 200 || body != "hello" {
			t.Fatalf("%d %q; want the answer without a 100 first", resp.StatusCode, body)
		}
	})
	for len(called) > 0 {
		<-called
	}
	t.Run("other expectation", func(t *testing.T) {
		c := dial(t, addr)
		c.send("POST /read HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 5\r\n\r\nhello")
		resp, _ := c.answer("POST")
		if resp.StatusCode != http.StatusExpectationFailed || !resp.Close {
			t.Fatalf("%d close=%v; want 417 and the end of the connection", resp.StatusCode, resp.Close)
		}
		c.closed()
		if len(called) != 0 {
			t.Fatalf("the handler was called for %s", <-called)
		}
	})
}

func TestFlush(t *testing.T) {
	firstRead := make(chan struct{})
	addr, _ := serveTest(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first;")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		<-firstRead // the client has the first part before the second is written
		io.WriteString(w, "second")
	})})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len("first;"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first;" {
		close(firstRead)
		t.Fatalf("first part %q: %v", first, err)
	}
	close(firstRead)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second" {
		t.Fatalf("second part %q: %v", rest, err)
	}
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := c.answer("GET"); body != "first;second" {
		t.Fatalf("the next answer: %q", body)
	}
}

func TestHijack(t *testing.T) {
	type result struct {
		extra        string
		write, again error
		err          error
		sessionEnded chan struct{}
	}
	got := make(chan result, 1)
	proceed := make(chan struct{})
	letProceed := sync.OnceFunc(func() { close(proceed) })
	defer letProceed()
	s := &Server{ReadHeaderTimeout: 100 * time.Millisecond, ReadTimeout: 100 * time.Millisecond}
	s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		conn, brw, err := rc.Hijack()
		if err != nil {
			got <- result{err: err}
			return
		}
		res := result{sessionEnded: make(chan struct{})}
		_, res.write = w.Write([]byte("x"))
		_, _, res.again = rc.Hijack()
		extra := make([]byte, len("EXTRA"))
		io.ReadFull(brw, extra) // sent with the head: in brw's buffer
		res.extra = string(extra)
		got <- res
		<-proceed
		// the session outlives the handler and the server's timeouts
		go func() {
			defer close(res.sessionEnded)
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
			brw.Flush()
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo " + line)
			brw.Flush()
		}()
	})
	addr, served := serveTest(t, s)
	c := dial(t, addr)
	c.send("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\nEXTRA")
	var res result
	select {
	case res = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not run")
	}
	if res.err != nil {
		t.Fatalf("Hijack: %v", res.err)
	}
	if res.extra != "EXTRA" || res.write != http.ErrHijacked || res.again != http.ErrHijacked {
		t.Fatalf("bytes after the head %q; Write after Hijack: %v; Hijack again: %v", res.extra, res.write, res.again)
	}

	// Shutdown does not wait for the handler of a hijacked connection,
	// nor end its session.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a hijacked connection: %v", err)
	}
	if err := <-served; err != ErrServerClosed {
		t.Fatalf("Serve returned %v", err)
	}
	letProceed()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("answer %v, %v", resp, err)
	}
	time.Sleep(3 * s.ReadTimeout) // past the request's read deadline
	c.send("ping\n")
	line, err := c.br.ReadString('\n')
	if line != "echo ping\n" {
		t.Fatalf("the session answered %q, %v; want only its own bytes", line, err)
	}
	waitFor(t, res.sessionEnded, "the session to end")
	c.closed()
}

func TestTimeouts(t *testing.T) {
	t.Run("ReadHeaderTimeout", func(t *testing.T) {
		called := make(chan struct{}, 1)
		addr, _ := serveTest(t, &Server{ReadHeaderTimeout: 150 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			called <- struct{}{}
		})})
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n") // and no more
		c.closed()
		c = dial(t, addr) // sends nothing
		c.closed()
		c = dial(t, addr) // one byte at a time, each in time, the head never
		for i := 0; ; i++ {
			if _, err := c.c.Write([]byte("GET / HTTP/1.1\r\nX: "[min(i, 18):][:1])); err != nil {
				break
			}
			if i > 100 {
				t.Fatal("a head that is never done keeps the connection")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// a partial request line is refused as net/http's server does
		// (bufio.Reader.ReadLine returns it without the timeout)
		if resp, err := http.ReadResponse(c.br, nil); err == nil {
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("a head cut by the timeout got %d", resp.StatusCode)
			}
			io.ReadAll(resp.Body)
		}
		c.closed()
		if len(called) != 0 {
			t.Fatal("the handler was called")
		}
	})
	t.Run("IdleTimeout", func(t *testing.T) {
		addr, _ := serveTest(t, &Server{IdleTimeout: 150 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				time.Sleep(300 * time.Millisecond) // a handler is not idle
			}
			io.WriteString(w, r.URL.Path)
		})})
		c := dial(t, addr)
		c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, body := c.answer("GET"); body != "/slow" {
			t.Fatalf("answer %q", body)
		}
		c.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, body := c.answer("GET"); body != "/fast" {
			t.Fatalf("answer %q", body)
		}
		c.closed()
	})
}

func TestHeadLimits(t *testing.T) {
	called := make(chan string, 10)
	addr, _ := serveTest(t, &Server{MaxHeaderBytes: 8 << 10, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called <- r.URL.Path
		fmt.Fprintf(w, "%s %d", r.URL.Path, len(r.Header.Get("X-Big")))
	})})
	big := func(path string, n int) string {
		return "GET " + path + " HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", n) + "\r\n\r\n"
	}

	t.Run("over the read buffer, under the limit", func(t *testing.T) {
		c := dial(t, addr)
		req := big("/mid", 6000)
		c.send(req[:3000]) // the head arrives in parts
		time.Sleep(10 * time.Millisecond)
		c.send(req[3000:] + "GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, body := c.answer("GET"); resp.StatusCode != 200 || body != "/mid 6000" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if _, body := c.answer("GET"); body != "/after 0" {
			t.Fatalf("the next answer %q", body)
		}
		c.send(big("/mid2", 7000))
		if _, body := c.answer("GET"); body != "/mid2 7000" {
			t.Fatalf("a second large head %q", body)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		for _, first := range []bool{true, false} {
			c := dial(t, addr)
			if !first {
				c.send(big("/small", 10))
				c.answer("GET")
			}
			c.send(big("/huge", 20<<10))
			resp, _ := c.answer("GET")
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !resp.Close {
				t.Fatalf("%d close=%v; want 431", resp.StatusCode, resp.Close)
			}
			c.closed()
		}
	})
	for len(called) > 0 {
		<-called
	}
	t.Run("bad bytes", func(t *testing.T) {
		for _, h := range []string{"X: a\x00b", "X: a\rb", "X: a\nb:c\r\n\r", "X\x00: a", "X\r: a", "X-\x7f: a"} {
			c := dial(t, addr)
			c.send("GET /bad HTTP/1.1\r\nHost: a\r\n" + h + "\r\n\r\n")
			resp, _ := c.answer("GET")
			if resp.StatusCode != http.StatusBadRequest || !resp.Close {
				t.Errorf("%q: %d close=%v; want 400", h, resp.StatusCode, resp.Close)
			}
			c.closed()
		}
		if len(called) != 0 {
			t.Fatalf("the handler was called for %s", <-called)
		}
	})
}

// logBuffer is a log destination safe for the server's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestHandlerPanic(t *testing.T) {
	var log logBuffer
	addr, _ := serveTest(t, &Server{Log: slog.New(slog.NewTextHandler(&log, nil)), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			io.WriteString(w, "never sent")
			panic("boom-3f9c")
		case "/flushed":
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic("boom-flushed")
		case "/abort":
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "ok")
	})})
	other := dial(t, addr)
	other.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	other.answer("GET")

	for _, path := range []string{"/panic", "/abort"} {
		c := dial(t, addr)
		c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
		c.closed() // without an answer
	}
	c := dial(t, addr)
	c.send("GET /flushed HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body, err := io.ReadAll(resp.Body); string(body) != "partial" || err == nil {
		t.Fatalf("body %q, %v; want the flushed part and an error", body, err)
	}
	c.closed()

	// other connections, old and new, are served
	other.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := other.answer("GET"); body != "ok" {
		t.Fatalf("an open connection after the panics: %q", body)
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := c.answer("GET"); body != "ok" {
		t.Fatalf("a new connection after the panics: %q", body)
	}
	logged := log.String()
	if !strings.Contains(logged, "boom-3f9c") || !strings.Contains(logged, "boom-flushed") || strings.Count(logged, "handler panic") != 2 {
		t.Fatalf("log: %s; want the two panics, not the abort", logged)
	}
}

func TestShutdown(t *testing.T) {
	inHandler, released := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(released) })
	defer release()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(inHandler)
			<-released
		}
		io.WriteString(w, "done "+r.URL.Path)
	})}
	addr, served := serveTest(t, s)
	idle := dial(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.answer("GET")
	busy := dial(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	waitFor(t, inHandler, "the handler")

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	idle.closed() // at once, while a request is in flight
	select {
	case err := <-served:
		if err != ErrServerClosed {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("a new connection is accepted after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	release()
	resp, body := busy.answer("GET")
	if body != "done /slow" || !resp.Close {
		t.Fatalf("the request in flight: %q close=%v", body, resp.Close)
	}
	busy.closed()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if err := s.Serve(mustListen(t)); err != ErrServerClosed {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestShutdownContextEnds(t *testing.T) {
	inHandler, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-release
	})}
	addr, _ := serveTest(t, s)
	busy := dial(t, addr)
	busy.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	waitFor(t, inHandler, "the handler")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v, want the context's error", err)
	}
	busy.closed()
}

// newCert makes a self-signed certificate for 127.0.0.1 and a pool that
// trusts it.
func newCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	c := testtls.SelfSigned(t)
	return c.TLS(t), c.Pool
}

// protoHandler answers with the protocol it was served with, and whether
// the request had TLS state.
var protoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "%d tls=%v", r.ProtoMajor, r.TLS != nil && r.TLS.HandshakeComplete)
})

func get(t *testing.T, tr *http.Transport, url string) (*http.Response, string) {
	t.Helper()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestTLS(t *testing.T) {
	cert, pool := newCert(t)
	h1Client := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	h2Client := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer h1Client.CloseIdleConnections()
	defer h2Client.CloseIdleConnections()

	t.Run("HTTP/1.1", func(t *testing.T) {
		addr, _ := serveTest(t, &Server{Handler: protoHandler, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
		for _, tr := range []*http.Transport{h1Client, h2Client} { // no h2 offered: HTTP/1.1
			resp, body := get(t, tr, "https://"+addr+"/")
			if body != "1 tls=true" || resp.ProtoMajor != 1 || resp.TLS == nil {
				t.Fatalf("%q %s", body, resp.Proto)
			}
		}
	})
	t.Run("h2", func(t *testing.T) {
		conf := &tls.Config{Certificates: []tls.Certificate{cert}}
		h2conf := conf.Clone()
		h2conf.NextProtos = []string{"h2"}
		s := &Server{Handler: protoHandler, TLSConfig: conf, H2: &http.Server{Handler: protoHandler, TLSConfig: h2conf}}
		addr, served := serveTest(t, s)
		resp, body := get(t, h2Client, "https://"+addr+"/")
		if body != "2 tls=true" || resp.ProtoMajor != 2 {
			t.Fatalf("an HTTP/2 client: %q %s", body, resp.Proto)
		}
		resp, body = get(t, h1Client, "https://"+addr+"/")
		if body != "1 tls=true" || resp.ProtoMajor != 1 {
			t.Fatalf("an HTTP/1.1 client: %q %s", body, resp.Proto)
		}
		// (an idle HTTP/2 connection would hold Shutdown for its GOAWAY's
		// timeout, a second)
		h2Client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := <-served; err != ErrServerClosed {
			t.Fatalf("Serve: %v", err)
		}
	})
	t.Run("handshake pending at Shutdown", func(t *testing.T) {
		s := &Server{Handler: protoHandler, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
		addr, _ := serveTest(t, s)
		c := dial(t, addr) // TCP only: the server waits for a ClientHello
		time.Sleep(20 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := s.Shutdown(ctx); err != context.DeadlineExceeded {
			t.Fatalf("Shutdown = %v", err)
		}
		c.closed()
	})
}

// A request's context is never cancelled (doc.go), neither while the
// handler runs nor when its connection ends; it carries the addresses,
// and the request its TLS state.
func TestRequestContext(t *testing.T) {
	type seen struct {
		remote, local string
		errDuring     error
		done          <-chan struct{}
		ctx           context.Context
	}
	got := make(chan seen, 2)
	cert, pool := newCert(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		local, _ := ctx.Value(http.LocalAddrContextKey).(net.Addr)
		s := seen{remote: r.RemoteAddr, errDuring: ctx.Err(), done: ctx.Done(), ctx: ctx}
		if local != nil {
			s.local = local.String()
		}
		got <- s
		fmt.Fprintf(w, "tls=%v", r.TLS != nil)
	})
	// check checks what the handler saw of a request on c, and returns
	// its context
	check := func(t *testing.T, c net.Conn, body string, wantTLS bool) context.Context {
		t.Helper()
		s := <-got
		if s.errDuring != nil || s.done != nil {
			t.Errorf("the context can end (Done %v) or ended during the handler (%v)", s.done, s.errDuring)
		}
		if s.remote != c.LocalAddr().String() || s.local != c.RemoteAddr().String() {
			t.Errorf("RemoteAddr %q, local %q; want %s, %s", s.remote, s.local, c.LocalAddr(), c.RemoteAddr())
		}
		if body != fmt.Sprintf("tls=%v", wantTLS) {
			t.Errorf("answer %q", body)
		}
		return s.ctx
	}

	t.Run("the client ends the connection", func(t *testing.T) {
		srv := &Server{Handler: h}
		addr, _ := serveTest(t, srv)
		c := dial(t, addr)
		var ctxs []context.Context
		for range 2 {
			c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			_, body := c.answer("GET")
			ctxs = append(ctxs, check(t, c.c, body, false))
		}
		c.c.Close()
		// the server has let the connection go
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			srv.mu.Lock()
			n := len(srv.conns)
			srv.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the server still holds the closed connection")
			}
		}
		for _, ctx := range ctxs {
			if ctx.Err() != nil {
				t.Errorf("a request's context ended with its connection: %v", ctx.Err())
			}
		}
	})
	t.Run("the server ends the connection, TLS", func(t *testing.T) {
		addr, _ := serveTest(t, &Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
		tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(tc, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if ctx := check(t, tc, string(body), true); ctx.Err() != nil {
			t.Errorf("a request's context ended: %v", ctx.Err())
		}
	})
}

// ReadTimeout alone bounds a TLS handshake, a request's head, its body and
// an idle connection, as in net/http's server.
func TestReadTimeout(t *testing.T) {
	readErr := make(errs, 1)
	addr, _ := serveTest(t, &Server{ReadTimeout: 150 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			_, err := io.ReadAll(r.Body)
			readErr <- err
		}
		io.WriteString(w, "answer")
	})})
	t.Run("head", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n")
		c.closed()
	})
	t.Run("body", func(t *testing.T) {
		c := dial(t, addr)
		c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhalf")
		resp, body := c.answer("POST")
		var ne net.Error
		if err := readErr.next(t); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("reading a body that stops: %v", err)
		}
		if body != "answer" || !resp.Close {
			t.Fatalf("%q close=%v", body, resp.Close)
		}
		c.closed()
	})
	t.Run("idle", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		c.answer("GET")
		c.closed()
	})
	t.Run("TLS handshake", func(t *testing.T) {
		cert, _ := newCert(t)
		addr, _ := serveTest(t, &Server{ReadTimeout: 150 * time.Millisecond, Handler: http.NotFoundHandler(), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
		dial(t, addr).closed() // no ClientHello
	})
}

// A handler's goroutine that writes after the handler returned gets an
// error, and the connection's next answer is untouched.
func TestWriteAfterHandler(t *testing.T) {
	late := make(chan http.ResponseWriter, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			late <- w
		}
		io.WriteString(w, "answer to "+r.URL.Path)
	})}
	addr, _ := serveTest(t, s)
	c := dial(t, addr)
	c.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := c.answer("GET"); body != "answer to /first" {
		t.Fatalf("first answer %q", body)
	}
	w := <-late
	if _, err := w.Write([]byte("HTTP/1.1 200 OK\r\nX-Injected: 1\r\n\r\n")); !errors.Is(err, errFinished) {
		t.Errorf("Write after the handler returned = %v, want errFinished", err)
	}
	w.WriteHeader(http.StatusTeapot)
	w.(http.Flusher).Flush()
	if _, _, err := w.(http.Hijacker).Hijack(); !errors.Is(err, errFinished) {
		t.Errorf("Hijack after the handler returned = %v", err)
	}
	c.send("GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, body := c.answer("GET")
	if resp.StatusCode != 200 || body != "answer to /second" || resp.Header.Get("X-Injected") != "" {
		t.Fatalf("second answer %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

// A connection that has not sent a byte stays new, so Shutdown closes it
// after the grace net/http gives such connections instead of waiting for
// its head's timeout.
func TestNewConnectionStaysNew(t *testing.T) {
	s := &Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Minute}
	addr, _ := serveTest(t, s)
	dial(t, addr) // sends nothing
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n, states := len(s.conns), []int32{}
		for c := range s.conns {
			states = append(states, c.state.Load())
		}
		s.mu.Unlock()
		if n == 1 {
			if states[0] != stateNew {
				t.Fatalf("a silent connection is in state %d, want new (%d)", states[0], stateNew)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection was not registered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// made older than the grace, it is closed by Shutdown's first sweep
	s.mu.Lock()
	for c := range s.conns {
		c.created = time.Now().Add(-time.Minute)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v, want nil (the silent connection closed)", err)
	}
}

// What the request asked of the connection is read before the handler: a
// handler that deletes the request's Connection header (as a proxy drops
// hop-by-hop fields) changes nothing.
func TestConnectionReadBeforeHandler(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Connection")
		io.WriteString(w, "ok")
	})}
	addr, _ := serveTest(t, s)

	c := dial(t, addr)
	c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	for i := 0; i < 2; i++ {
		if resp, body := c.answer("GET"); body != "ok" || resp.Header.Get("Connection") != "keep-alive" {
			t.Fatalf("HTTP/1.0 answer %d: %q, Connection %q", i, body, resp.Header.Get("Connection"))
		}
	}

	c = dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if resp, _ := c.answer("GET"); !resp.Close { // (http.ReadResponse moves "Connection: close" there)
		t.Fatal("the answer does not say Connection: close")
	}
	c.closed()
}

// A request body read after its handler returned (by a goroutine the
// handler left behind, as an HTTP client's transport may) reads nothing:
// the connection's buffers went back to their pools and may be another
// connection's by then.
func TestBodyReadAfterHandler(t *testing.T) {
	bodies := make(chan io.Reader, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bodies <- r.Body
		io.WriteString(w, "answer to "+r.URL.Path)
	})}
	addr, _ := serveTest(t, s)
	c := dial(t, addr)
	c.send("POST /first HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 10\r\n\r\n01234")
	c.answer("POST")
	c.closed()
	body := <-bodies

	// another connection, whose head may now be in the first's buffer
	other := dial(t, addr)
	other.send("GET /other HTTP/1.1\r\nHost: a\r\nX-Private: ")
	time.Sleep(50 * time.Millisecond)

	var n int
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		n, err = body.Read(make([]byte, 64))
	}()
	if n != 0 || err != http.ErrBodyReadAfterClose {
		t.Fatalf("Read after the handler returned = %d, %v; want 0, ErrBodyReadAfterClose", n, err)
	}
	other.send("x\r\n\r\n")
	if _, b := other.answer("GET"); b != "answer to /other" {
		t.Fatalf("the other connection's answer: %q", b)
	}
	<-bodies
}

// A request whose connection ends after its answer (Connection: close,
// HTTP/1.0) is answered without reading its unread body first, as by
// net/http's server: the answer does not wait for a body the client may
// not send.
func TestUnreadBodyOfLastRequest(t *testing.T) {
	addr, _ := serveTest(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		http.Error(w, "refused", http.StatusUnauthorized)
	})})
	for _, req := range []string{
		"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 10\r\n\r\n01234",
		"POST / HTTP/1.0\r\nContent-Length: 10\r\n\r\n01234",
		"POST /close HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234",
	} {
		c := dial(t, addr)
		c.c.SetDeadline(time.Now().Add(2 * time.Second))
		c.send(req)
		if resp, _ := c.answer("POST"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%q: status %d", req, resp.StatusCode)
		}
		c.closed()
	}
}

// A head a little over the read buffer costs the connection a buffer
// near its size, not one of MaxHeaderBytes: else a few kilobytes sent on
// each of many connections would hold a megabyte on each.
func TestHeadBufferGrowsWithHead(t *testing.T) {
	s := &Server{Handler: http.NotFoundHandler(), MaxHeaderBytes: 1 << 20, ReadHeaderTimeout: time.Minute}
	addr, _ := serveTest(t, s)
	const conns = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range conns {
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", readBufferSize+100)) // no end
	}
	// wait until every connection has read what it was sent
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.ReadMemStats(&after)
		if after.TotalAlloc-before.TotalAlloc > conns*readBufferSize || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	runtime.ReadMemStats(&after)
	if perConn := (after.TotalAlloc - before.TotalAlloc) / conns; perConn > 64<<10 {
		t.Fatalf("a %d-byte head took %d bytes per connection", readBufferSize+100, perConn)
	}
}

// The answer's head frames its body as the body is sent, whatever the
// handler does to its header map after WriteHeader (net/http's server
// copies the header at WriteHeader; h1 copies it only when the handler
// calls Header again).
func TestContentLengthAfterWriteHeader(t *testing.T) {
	big := strings.Repeat("x", 5000)
	addr, _ := serveTest(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/changed":
			h.Set("Content-Length", "10")
			w.WriteHeader(200)
			h.Set("Content-Length", "5")
			io.WriteString(w, "0123456789")
		case "/added":
			w.WriteHeader(200)
			h.Set("Content-Length", "3")
			io.WriteString(w, big)
		case "/two":
			h["Content-Length"] = []string{"4", "40"}
			io.WriteString(w, "abcd")
		default:
			io.WriteString(w, "answer to "+r.URL.Path)
		}
	})})
	for path, want := range map[string]string{"/changed": "0123456789", "/added": big, "/two": "abcd"} {
		c := dial(t, addr)
		c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if cl := resp.Header.Values("Content-Length"); len(cl) > 1 || len(cl) == 1 && len(resp.TransferEncoding) > 0 {
			t.Errorf("%s: Content-Length %q with Transfer-Encoding %q", path, cl, resp.TransferEncoding)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Errorf("%s: body of %d bytes, want %d", path, len(body), len(want))
		}
		if _, b := c.answer("GET"); b != "answer to /next" {
			t.Errorf("%s: the next answer %q", path, b)
		}
	}
}

// A client that stops reading its answer is cut off after
// WriteStallTimeout, while a long answer that the client reads goes on.
func TestWriteStallTimeout(t *testing.T) {
	werr := make(errs, 1)
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	s := &Server{WriteStallTimeout: 200 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-but-read" {
			for range 6 { // 600 ms in all, longer than the bound
				w.Write([]byte("tick\n"))
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
			return
		}
		for range 1024 { // 64 MB: more than the sockets hold
			if _, err := w.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	})}
	addr, _ := serveTest(t, s)

	c := dial(t, addr)
	c.send("GET /slow-but-read HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := c.answer("GET"); body != strings.Repeat("tick\n", 6) {
		t.Fatalf("a slow answer that is read: %q", body)
	}

	stalled := dial(t, addr) // sends a request and never reads
	stalled.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
	var ne net.Error
	if err := werr.next(t); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("the handler's write to a client that stopped reading = %v, want a timeout", err)
	}
}

// A client speaking the wrong protocol is told at once: TLS to a plain
// address gets a plain-text 400 (its TLS stack reports "not TLS") instead of
// a wait for the header timeout; plain HTTP to a TLS address gets net/http's
// 400 instead of a closed connection.
func TestWrongProtocolIsAnswered(t *testing.T) {
	cert, pool := newCert(t)
	t.Run("TLS to plain", func(t *testing.T) {
		addr, _ := serveTest(t, &Server{Handler: protoHandler, ReadHeaderTimeout: time.Minute})
		start := time.Now()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool})
		if err == nil {
			conn.Close()
			t.Fatal("TLS handshake with a plain-HTTP server succeeded")
		}
		if !strings.Contains(err.Error(), "does not look like a TLS handshake") || time.Since(start) > 3*time.Second {
			t.Fatalf("after %v: %v", time.Since(start), err)
		}
		c := dial(t, addr) // the same bytes by hand: the answer names the mistake
		c.send("\x16\x03\x01\x00\x05hello")
		if line, _ := c.br.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 400 Bad Request: the client sent a TLS handshake to a plain-HTTP address") {
			t.Fatalf("answer %q", line)
		}
	})
	t.Run("plain to TLS", func(t *testing.T) {
		addr, _ := serveTest(t, &Server{Handler: protoHandler, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), "Client sent an HTTP request to an HTTPS server") {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
}

// deadlineCounter counts the read-deadline changes of the connections it
// accepts.
type deadlineCounter struct {
	net.Listener
	changes atomic.Int64
}

func (l *deadlineCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, n: &l.changes}, nil
}

type countedConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countedConn) SetReadDeadline(t time.Time) error {
	c.n.Add(1)
	return c.Conn.SetReadDeadline(t)
}
func (c *countedConn) SetDeadline(t time.Time) error { c.n.Add(1); return c.Conn.SetDeadline(t) }

// A busy connection keeps its idle deadline from one request to the next
// while it is still at least IdleTimeout ahead, yet is never closed
// before IdleTimeout of idleness.
func TestIdleDeadlineKeptAcrossRequests(t *testing.T) {
	const idle = 400 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &deadlineCounter{Listener: ln}
	s := &Server{IdleTimeout: idle, Log: slog.New(slog.DiscardHandler), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	})}
	go s.Serve(counted)
	t.Cleanup(func() { s.Close() })

	c := dial(t, ln.Addr().String())
	const requests = 20
	var last time.Time
	for i := range requests {
		c.send(fmt.Sprintf("GET /%d HTTP/1.1\r\nHost: a\r\n\r\n", i))
		if _, body := c.answer("GET"); body != fmt.Sprintf("/%d", i) {
			t.Fatalf("answer %q", body)
		}
		last = time.Now()
	}
	// The first request's wait sets one (a new connection's), the second
	// the idle one; the rest fall within idle/16 (25 ms) of it, unless
	// this machine is slow: allow a few more, far below one a request.
	if n := counted.changes.Load(); n > 6 {
		t.Errorf("%d read-deadline changes for %d requests", n, requests)
	}
	c.closed()
	if waited := time.Since(last); waited < idle-20*time.Millisecond {
		t.Errorf("closed %v after the last answer; IdleTimeout is %v", waited, idle)
	}
}

// A body framed by Content-Length under a head the fast path reads
// (fast.go) is read whole under ReadTimeout, which runs from the head's
// arrival, and the next request on the connection follows it.
func TestSimpleHeadWithBody(t *testing.T) {
	addr, _ := serveTest(t, &Server{ReadTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d %q %v", r.URL.Path, r.ContentLength, b, err)
	})})
	c := dial(t, addr)
	c.send("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n")
	if _, body := c.answer("POST"); body != `/a 5 "hello" <nil>` {
		t.Fatalf("first answer %q", body)
	}
	time.Sleep(20 * time.Millisecond) // the second body comes later
	c.send("abc")
	if _, body := c.answer("POST"); body != `/b 3 "abc" <nil>` {
		t.Fatalf("second answer %q", body)
	}
}

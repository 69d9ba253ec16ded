package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/keyward/keyward/internal/cputime"
)

// simpleHeads are heads the fast path must take: the gateway's, and
// simple variations.
var simpleHeads = []string{
	"GET /v1/gateway/up/v1/ping HTTP/1.1\r\nHost: 127.0.0.1:19485\r\nUser-Agent: x\r\nAuthorization: Bearer kw_0123456789abcdef0123456789abcdef\r\nAccept-Encoding: gzip\r\n\r\n", // keyward:allow (test fixture)
	"GET /v1/gateway/up/v1/ping HTTP/1.1\r\nHost: 127.0.0.1:19485\r\nUser-Agent: Go-http-client/1.1\r\nAuthorization: Bearer kw_x\r\nAccept-Encoding: gzip\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",
	"DELETE /v1/secrets/a?version=3 HTTP/1.1\r\nhost: a\r\nuser-agent: curl/8.0\r\naccept: */*\r\n\r\n",
	"GET /x HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\nX-DUP:3\r\nOther: o\r\n\r\n",
	"POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
	"POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Length:   0  \r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 00\r\n\r\n",
	// bodies framed by Content-Length: whole, followed by the next
	// request, cut short, asked for with 100 Continue
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST /v1/keys/verify HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"key\":\"k\"}GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
	"PUT / HTTP/1.1\r\nHost: a\r\ncontent-length: 10\r\n\r\nhel",
	"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0005\r\nConnection: close\r\n\r\nhello",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\nx",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nConnection: \tclose\t\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nCache-Control: max-age=0\r\n\r\n",
	"GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a%2Fb?q=1&r=%20#frag HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET //x HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost:\r\nX-Empty:\r\nX-Space:   \r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Obs: caf\xc3\xa9 \xff\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Tab:\tin\tside\t\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nweird_!#$%&'*+.^`|~: v\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", // refused later, by checkHost
	"PRI / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\n" + strings.Repeat("X-Many: v\r\n", maxFastLines-1) + "Host: a\r\n\r\n",
	// values that fill simpleRequest's block, and more than it holds
	"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nA: 6\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nA: 7\r\n\r\n",
	"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nb: 8\r\n\r\n",
	"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nHost: a\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\n\r\n",
}

// otherHeads are heads the fast path must leave to http.ReadRequest.
var otherHeads = []string{
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/1.1\r\nHost: a\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: 1\x00\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n", // not whole
	"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
	"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://other/ HTTP/1.1\r\nHost: a\r\n\r\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
	"get / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
	"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\n" + strings.Repeat("X-Many: v\r\n", maxFastLines) + "Host: a\r\n\r\n",
}

// buffered is a bufio.Reader of raw whose buffer holds raw[:split] only
// (all of raw when split is out of range), as a connection's does when
// the rest has not come yet.
func buffered(raw []byte, split int) *bufio.Reader {
	raw = bytes.Clone(raw) // http.ReadRequest changes the bytes it reads
	if split <= 0 || split > len(raw) {
		split = len(raw)
	}
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(raw[:split]), bytes.NewReader(raw[split:])), max(len(raw), 16))
	br.Peek(1)
	return br
}

// checkFast reads raw (buffered up to split) by the fast path and, when it
// takes it, by http.ReadRequest, and reports whether it took it; t fails
// when the two differ.
func checkFast(t *testing.T, raw []byte, split int) bool {
	t.Helper()
	brFast := buffered(raw, split)
	inBuffer := brFast.Buffered()
	buf, _ := brFast.Peek(inBuffer)
	scanned, whole := scanHead(bytes.Clone(buf))
	sr, hd := readSimpleRequest(brFast, nil)
	if sr == nil {
		if brFast.Buffered() != inBuffer {
			t.Fatalf("%s: not taken, but %d bytes consumed", short(raw), inBuffer-brFast.Buffered())
		}
		return false
	}
	fast := &sr.req
	// readRequest takes a simple head's Host field from its parser, not
	// from scanHead
	if !whole || hd != scanned {
		t.Fatalf("%s: the fast path reports the Host field as %+v, scanHead as %+v (whole %v)", short(raw), hd, scanned, whole)
	}
	brStd := buffered(raw, 0)
	std, err := http.ReadRequest(brStd)
	if err != nil {
		t.Fatalf("%s: the fast path took a head http.ReadRequest refuses: %v", short(raw), err)
	}
	checkBodies(t, raw, fast.Body, std.Body)
	restFast, _ := io.ReadAll(brFast)
	restStd, _ := io.ReadAll(brStd)
	if !bytes.Equal(restFast, restStd) {
		t.Fatalf("%s: the fast path leaves %q, http.ReadRequest %q", short(raw), restFast, restStd)
	}
	if d := requestDiff(fast, std); d != "" {
		t.Fatalf("%s: %s", short(raw), d)
	}
	checkValuesApart(t, raw, fast.Header)
	// readRequest skips its field checks for a head read here: they
	// must hold for every head the fast path takes
	if err := checkFields(fast.Header); err != nil {
		t.Fatalf("%s: the fast path took a field readRequest must refuse: %v", short(raw), err)
	}
	if fast.ProtoMajor != 1 {
		t.Fatalf("%s: the fast path took HTTP/%d", short(raw), fast.ProtoMajor)
	}
	return true
}

// checkBodies reads both bodies to their end, with reads of 1 to 7
// bytes, and fails when their bytes, the error that ends them or what a
// read after that gives differ. (Not read in step: how many bytes a read
// gives depends on what each reader had buffered, which http.ReadRequest's
// own reads of the head change.)
func checkBodies(t *testing.T, raw []byte, fast, std io.Reader) {
	t.Helper()
	read := func(r io.Reader) (data []byte, end, after error, afterN int) {
		for i := 0; ; i++ {
			p := make([]byte, 1+i%7)
			n, err := r.Read(p)
			data = append(data, p[:n]...)
			if err != nil {
				afterN, after = r.Read(make([]byte, 4))
				return data, err, after, afterN
			}
		}
	}
	fd, fe, fa, fn := read(fast)
	sd, se, sa, sn := read(std)
	if !bytes.Equal(fd, sd) || fe != se || fa != sa || fn != sn {
		t.Fatalf("%s: body: fast %q, ended by %v, then %d, %v; http.ReadRequest's %q, ended by %v, then %d, %v",
			short(raw), fd, fe, fn, fa, sd, se, sn, sa)
	}
}

// short quotes raw, up to 200 bytes of it, for a failure's message.
func short[T string | []byte](raw T) string {
	if len(raw) > 200 {
		return fmt.Sprintf("%q... (%d bytes)", raw[:200], len(raw))
	}
	return fmt.Sprintf("%q", raw)
}

// requestDiff reports how the fast path's request differs from
// http.ReadRequest's.
func requestDiff(fast, std *http.Request) string {
	type pair struct {
		name      string
		fast, std any
	}
	fu, su := fast.URL, std.URL
	for _, p := range []pair{
		{"Method", fast.Method, std.Method},
		{"URL", fu.String(), su.String()},
		{"URL.Scheme", fu.Scheme, su.Scheme},
		{"URL.Opaque", fu.Opaque, su.Opaque},
		{"URL.User", fu.User, su.User},
		{"URL.Host", fu.Host, su.Host},
		{"URL.Path", fu.Path, su.Path},
		{"URL.RawPath", fu.RawPath, su.RawPath},
		{"URL.OmitHost", fu.OmitHost, su.OmitHost},
		{"URL.ForceQuery", fu.ForceQuery, su.ForceQuery},
		{"URL.RawQuery", fu.RawQuery, su.RawQuery},
		{"URL.Fragment", fu.Fragment, su.Fragment},
		{"URL.RawFragment", fu.RawFragment, su.RawFragment},
		{"Proto", fast.Proto, std.Proto},
		{"ProtoMajor", fast.ProtoMajor, std.ProtoMajor},
		{"ProtoMinor", fast.ProtoMinor, std.ProtoMinor},
		{"Header", fast.Header, std.Header},
		{"Host", fast.Host, std.Host},
		{"RequestURI", fast.RequestURI, std.RequestURI},
		{"ContentLength", fast.ContentLength, std.ContentLength},
		{"TransferEncoding", fast.TransferEncoding, std.TransferEncoding},
		{"Close", fast.Close, std.Close},
		{"Trailer", fast.Trailer, std.Trailer},
		{"Body is NoBody", fast.Body == http.NoBody, std.Body == http.NoBody},
	} {
		if !reflect.DeepEqual(p.fast, p.std) {
			return fmt.Sprintf("%s: fast %#v, http.ReadRequest %#v", p.name, p.fast, p.std)
		}
	}
	// and every other field, exported or not (Form, ctx, ...), but the
	// body, which is not net/http's (checkBodies reads both)
	fastRest, stdRest := *fast, *std
	fastRest.Body, stdRest.Body = nil, nil
	if !reflect.DeepEqual(&fastRest, &stdRest) {
		return fmt.Sprintf("requests differ:\nfast %#v\nhttp.ReadRequest %#v", fast, std)
	}
	return ""
}

// checkValuesApart: an append to one key's values (which a handler may
// make) changes no other key's.
func checkValuesApart(t *testing.T, raw []byte, h http.Header) {
	t.Helper()
	before := h.Clone()
	for k, vs := range h {
		_ = append(vs, "appended")
		if !reflect.DeepEqual(h, before) {
			t.Fatalf("%s: an append to %s's values changed the header: %q", short(raw), k, h)
		}
	}
}

func TestFastRequest(t *testing.T) {
	for _, raw := range simpleHeads {
		if !checkFast(t, []byte(raw), 0) {
			t.Errorf("%s: the fast path did not take it", short(raw))
		}
	}
	for _, raw := range otherHeads {
		if checkFast(t, []byte(raw), 0) {
			t.Errorf("%s: the fast path took it", short(raw))
		}
	}
	// a head not yet buffered whole is http.ReadRequest's, which reads on
	raw := simpleHeads[0]
	for split := 1; split < len(raw); split++ {
		if checkFast(t, []byte(raw), split) {
			t.Fatalf("taken with %d of %d bytes buffered", split, len(raw))
		}
	}
}

// FuzzFastRequest holds the fast path to http.ReadRequest: for any bytes,
// of which any prefix is buffered, a head the fast path takes is one
// http.ReadRequest reads to an equal request, consuming as many bytes.
func FuzzFastRequest(f *testing.F) {
	for _, raw := range simpleHeads {
		f.Add([]byte(raw), 0)
	}
	for _, raw := range otherHeads {
		f.Add([]byte(raw), 0)
	}
	for _, raw := range requests {
		f.Add([]byte(raw), 0)
	}
	f.Add([]byte(simpleHeads[0]), 40)
	f.Fuzz(func(t *testing.T, raw []byte, split int) {
		checkFast(t, raw, split)
	})
}

// gatewayHead is a request as the gateway benchmark sends it.
const gatewayHead = "GET /v1/gateway/up/v1/ping HTTP/1.1\r\nHost: 127.0.0.1:19485\r\nUser-Agent: Go-http-client/1.1\r\nAuthorization: Bearer kw_0123456789abcdef0123456789abcdef\r\nAccept-Encoding: gzip\r\n\r\n" // keyward:allow (test fixture)

// verifyHead is a key verification as bench/apikeys sends it: a head
// with a JSON body.
const verifyHead = "POST /v1/keys/verify HTTP/1.1\r\nHost: 127.0.0.1:18381\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 62\r\nAuthorization: Bearer kw_0123456789abcdef0123456789abcdef\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n" + // keyward:allow (test fixture)
	`{"key":"kwk_live0123456789abcdef0123456789abcdef0123456789ab"}`

// BenchmarkReadRequest reads the gateway's head and the verification's
// (head and body) by the fast path and by http.ReadRequest.
func BenchmarkReadRequest(b *testing.B) {
	run := func(b *testing.B, raw string, read func(*bufio.Reader) (*http.Request, error)) {
		src := strings.NewReader(raw)
		br := bufio.NewReaderSize(src, readBufferSize)
		var body [128]byte
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			src.Reset(raw)
			br.Reset(src)
			br.Peek(len(raw))
			req, err := read(br)
			if err != nil || req.Host == "" {
				b.Fatal(req, err)
			}
			if n, _ := io.ReadFull(req.Body, body[:req.ContentLength]); int64(n) != req.ContentLength || br.Buffered() != 0 {
				b.Fatalf("body of %d bytes, %d left", n, br.Buffered())
			}
		}
	}
	fast := func(br *bufio.Reader) (*http.Request, error) {
		if sr, _ := readSimpleRequest(br, nil); sr != nil {
			return &sr.req, nil
		}
		return nil, fmt.Errorf("not taken")
	}
	for _, h := range []struct{ name, raw string }{{"gateway", gatewayHead}, {"verify", verifyHead}} {
		b.Run(h.name+"/fast", func(b *testing.B) { run(b, h.raw, fast) })
		b.Run(h.name+"/readrequest", func(b *testing.B) { run(b, h.raw, http.ReadRequest) })
	}
}

// BenchmarkServe measures a whole request on a keep-alive connection as
// the gateway's hot path has it: the gateway's head, no body, an answer of
// known length, over loopback. Most of its time is the two sides'
// syscalls and wake-ups; its allocs/op and B/op are the server's (the
// client reads without allocating).
//
//	go test ./internal/h1 -run '^$' -bench Serve -benchmem -count 5
func BenchmarkServe(b *testing.B) {
	body := []byte(`{"ok":true,"service":"up"}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "27")
		w.Write(body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, WriteStallTimeout: time.Minute}
	go s.Serve(ln)
	defer s.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte(gatewayHead)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := readAnswer(br, len(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// readAnswer reads a 200 answer with a body of want bytes from br, without
// allocating.
func readAnswer(br *bufio.Reader, want int) error {
	line, err := br.ReadSlice('\n')
	if err != nil || !bytes.HasPrefix(line, []byte("HTTP/1.1 200 OK\r\n")) {
		return fmt.Errorf("status line %q, %v", line, err)
	}
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length = 0
			for _, c := range bytes.TrimSpace(v) {
				length = 10*length + int(c-'0')
			}
		}
	}
	if length != want {
		return fmt.Errorf("Content-Length %d, want %d", length, want)
	}
	_, err = br.Discard(length)
	return err
}

// reportCPU, deferred at a benchmark's start, reports the process's CPU
// time (user and system, all threads: the GC's too) per operation, which
// other load on a shared machine inflates less than ns/op.
func reportCPU(b *testing.B) func() {
	start := cputime.Process()
	return func() {
		if start >= 0 {
			b.ReportMetric(float64(cputime.Process()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// BenchmarkServeConn is BenchmarkServe's request served on a connection
// that is memory, not a socket: each read gives a request, each write is
// counted and dropped, its deadlines are recorded, not armed. Without
// syscalls and wake-ups it measures h1's own work a request (and its
// handler's), in one goroutine.
func BenchmarkServeConn(b *testing.B) {
	body := []byte(`{"ok":true,"service":"up"}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "27")
		w.Write(body)
	})
	s := &Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, WriteStallTimeout: time.Minute,
		Log: slog.New(slog.DiscardHandler)}
	s.conns = map[*conn]struct{}{} // as Serve makes it
	mc := &memConn{req: []byte(gatewayHead), left: b.N}
	c := s.newConn(mc, nil)
	b.ReportAllocs()
	defer reportCPU(b)()
	b.ResetTimer()
	c.serve()
	b.StopTimer()
	if mc.left != 0 || mc.answers != b.N {
		b.Fatalf("%d requests left, %d answers of %d", mc.left, mc.answers, b.N)
	}
}

// memConn is a keep-alive client in memory: every Read gives req whole,
// left times, then io.EOF; every Write is an answer.
type memConn struct {
	req     []byte
	left    int
	answers int
}

func (m *memConn) Read(p []byte) (int, error) {
	if m.left == 0 {
		return 0, io.EOF
	}
	m.left--
	return copy(p, m.req), nil
}

func (m *memConn) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, []byte("HTTP/1.1 200 OK\r\n")) {
		return 0, fmt.Errorf("answer %q", p)
	}
	m.answers++
	return len(p), nil
}

func (m *memConn) Close() error                       { return nil }
func (m *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (m *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (m *memConn) SetDeadline(t time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(t time.Time) error { return nil }

// TestSimpleRequestSize: simpleRequest, with malloc's 8-byte header,
// fits the 704-byte size class (see its comment); a change of the types
// in it that takes it to the next one, 768, should be noticed.
func TestSimpleRequestSize(t *testing.T) {
	if n := unsafe.Sizeof(simpleRequest{}); n+8 > 704 {
		t.Errorf("simpleRequest takes %d bytes, and 8 more of malloc's header, over the size class of 704: resize its strs", n)
	}
}

// writeField writes the same line whether it fits in the writer's room
// (one append into its buffer) or not (a write at a time).
func TestWriteFieldRoom(t *testing.T) {
	long := strings.Repeat("v", 5000)
	for _, tc := range []struct{ k, v, want string }{
		{"Content-Type", "application/json", "Content-Type: application/json\r\n"},
		{"X-Trim", " \ta\r\nb\t ", "X-Trim: a  b\r\n"},
		{"X-Long", long, "X-Long: " + long + "\r\n"},
		{"X-Empty", "", "X-Empty: \r\n"},
	} {
		for _, size := range []int{16, 4096} {
			var out bytes.Buffer
			bw := bufio.NewWriterSize(&out, size)
			bw.WriteString("HTTP/1.1 200 OK\r\n") // some room already taken
			writeField(bw, tc.k, tc.v)
			bw.Flush()
			if got := strings.TrimPrefix(out.String(), "HTTP/1.1 200 OK\r\n"); got != tc.want {
				t.Errorf("size %d: writeField(%q, %q) wrote %q, want %q", size, tc.k, tc.v, got, tc.want)
			}
		}
	}
}

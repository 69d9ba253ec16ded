package sockio

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pair returns a wrapped client connection and the server's end of it (not
// wrapped), both closed at the end of the test.
func pair(t testing.TB) (wrapped, peer net.Conn) {
	t.Helper()
	wrapped, peer, _ = pairPlain(t)
	return wrapped, peer
}

// pairPlain is pair that also returns the client's connection unwrapped.
func pairPlain(t testing.TB) (wrapped, peer, plain net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer = <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	wrapped = Wrap(c)
	t.Cleanup(func() { wrapped.Close(); peer.Close() })
	return wrapped, peer, c
}

func TestWrapTakesOnlyTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Error("Wrap changed a net.Pipe connection; want it returned as it is")
	}
	w, _ := pair(t)
	_, isTCP := w.(*net.TCPConn)
	if isTCP == (runtime.GOOS == "linux") {
		t.Errorf("Wrap of a *net.TCPConn on %s gave %T", runtime.GOOS, w)
	}
	// What the callers rely on besides Read and Write.
	if _, ok := w.(interface{ CloseWrite() error }); !ok {
		t.Error("the wrapped connection has no CloseWrite")
	}
	if _, ok := w.(syscall.Conn); !ok {
		t.Error("the wrapped connection has no SyscallConn")
	}
}

// Both directions carry every byte, in order, including writes larger than
// the socket's buffers (the write waits for the poller part-way through).
func TestRoundTripLargerThanTheBuffers(t *testing.T) {
	w, peer := pair(t)
	peer.(*net.TCPConn).SetReadBuffer(64 << 10)
	w.(interface{ SetWriteBuffer(int) error }).SetWriteBuffer(64 << 10)
	data := make([]byte, 2<<20)
	rand.Read(data)

	// The peer echoes everything back, starting only once the writer has
	// surely filled the buffers.
	go func() {
		time.Sleep(50 * time.Millisecond)
		io.Copy(peer, peer)
	}()
	werr := make(chan error, 1)
	go func() {
		n, err := w.Write(data)
		if err == nil && n != len(data) {
			err = errors.New("short write without an error")
		}
		werr <- err
	}()
	got := make([]byte, 0, len(data))
	buf := make([]byte, 7000) // not a divisor of anything above
	for len(got) < len(data) {
		n, err := w.Read(buf)
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-werr; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the bytes read back differ from those written")
	}
}

func TestZeroLength(t *testing.T) {
	w, _ := pair(t)
	if n, err := w.Write(nil); n != 0 || err != nil {
		t.Errorf("Write(nil) = %d, %v; want 0, nil", n, err)
	}
	w.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := w.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) = %d, %v; want 0, nil without waiting", n, err)
	}
}

func TestEOF(t *testing.T) {
	w, peer := pair(t)
	peer.Write([]byte("last"))
	peer.Close()
	got, err := io.ReadAll(w)
	if err != nil || string(got) != "last" {
		t.Fatalf("ReadAll = %q, %v; want \"last\", nil", got, err)
	}
	if n, err := w.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Errorf("Read after the end = %d, %v; want 0, io.EOF", n, err)
	}
}

// assertOpError checks what callers test for: a *net.OpError of the
// operation's name wrapping want.
func assertOpError(t *testing.T, err error, op string, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v (%T) is not %v", err, err, want)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("error %v (%T) is not a *net.OpError", err, err)
	}
	if oe.Op != op {
		t.Errorf("error's Op = %q, want %q (as the net package's)", oe.Op, op)
	}
}

func TestReadDeadline(t *testing.T) {
	w, _ := pair(t)
	w.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	start := time.Now()
	_, err := w.Read(make([]byte, 8))
	assertOpError(t, err, "read", os.ErrDeadlineExceeded)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v is not a net.Error with Timeout", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("Read outlived its deadline by seconds")
	}
	// A deadline already past refuses at once.
	if _, err := w.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past the deadline: %v", err)
	}
}

func TestWriteDeadlineReportsWhatWasWritten(t *testing.T) {
	w, peer := pair(t)
	if tc, ok := peer.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
	}
	w.(interface{ SetWriteBuffer(int) error }).SetWriteBuffer(4 << 10)
	data := make([]byte, 8<<20) // never read by the peer: cannot all fit
	w.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := w.Write(data)
	assertOpError(t, err, "write", os.ErrDeadlineExceeded)
	if n <= 0 || n >= len(data) {
		t.Errorf("Write reported %d bytes written; want some, not all", n)
	}
	// Exactly n bytes reached the peer.
	w.Close()
	got, _ := io.Copy(io.Discard, peer)
	if got != int64(n) {
		t.Errorf("the peer read %d bytes; Write reported %d", got, n)
	}
}

func TestClosed(t *testing.T) {
	w, _ := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := w.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the Read wait in the poller
	w.Close()
	select {
	case err := <-done:
		assertOpError(t, err, "read", net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Read")
	}
	_, err := w.Write([]byte("x"))
	assertOpError(t, err, "write", net.ErrClosed)
}

func TestReset(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("a reset is WSAECONNRESET there")
	}
	w, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0) // close with RST
	peer.Close()
	w.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := w.Read(make([]byte, 8))
	assertOpError(t, err, "read", syscall.ECONNRESET)
}

// Writers and readers on one connection at once (run with -race): every
// message arrives whole, as with the net package's connection.
func TestConcurrentWriters(t *testing.T) {
	w, peer := pair(t)
	const writers, each = 4, 200
	msg := func(i byte) []byte { return bytes.Repeat([]byte{'a' + i}, 1000) }
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := w.Write(msg(byte(i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); w.(interface{ CloseWrite() error }).CloseWrite() }()
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*each*1000 {
		t.Fatalf("read %d bytes, want %d", len(got), writers*each*1000)
	}
	for off := 0; off < len(got); off += 1000 {
		if !bytes.Equal(got[off:off+1000], msg(got[off]-'a')) {
			t.Fatalf("message at %d is interleaved with another", off)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Wrap returns the connection itself here")
	}
	w, peer := pair(t)
	out, in := []byte("ping"), make([]byte, 4)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := w.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, in); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(in); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(w, in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a write and a read of the wrapped connection allocate %.1f times; want 0", allocs)
	}
}

// BenchmarkPingPong: a 64-byte exchange over loopback, through the net
// package's connection (plain) and the wrapped one.
func BenchmarkPingPong(b *testing.B) {
	for _, wrap := range []bool{false, true} {
		name := "plain"
		if wrap {
			name = "sockio"
		}
		b.Run(name, func(b *testing.B) {
			w, peer, plain := pairPlain(b)
			if !wrap {
				w = plain
			}
			go io.Copy(peer, peer)
			buf := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(w, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// deferrer returns w's Defer, skipping the test where Wrap returns the
// connection itself.
func deferrer(t *testing.T, w net.Conn) Deferrer {
	t.Helper()
	d, ok := w.(Deferrer)
	if !ok {
		if runtime.GOOS == "linux" {
			t.Fatal("a wrapped connection is not a Deferrer")
		}
		t.Skip("Wrap returns the connection itself here")
	}
	return d
}

// What Defer holds goes out with the next Read, which returns the answer.
func TestDeferSendsWithTheNextRead(t *testing.T) {
	w, peer := pair(t)
	d := deferrer(t, w)
	go io.Copy(peer, peer) // echo
	for i := range 3 {     // the held buffer is reused from one to the next
		msg := []byte{'a' + byte(i), 'b', 'c'}
		d.Defer(msg[:1])
		d.Defer(msg[1:])
		msg[0] = 'X' // Defer copied it
		got := make([]byte, 3)
		w.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(w, got); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if want := string([]byte{'a' + byte(i), 'b', 'c'}); string(got) != want {
			t.Fatalf("round %d: read %q, want %q", i, got, want)
		}
	}
}

// A Write after a Defer sends the held bytes first.
func TestDeferThenWriteKeepsTheOrder(t *testing.T) {
	w, peer := pair(t)
	d := deferrer(t, w)
	d.Defer([]byte("first,"))
	if _, err := w.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("first,second"))
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "first,second" {
		t.Fatalf("peer read %q, %v", got, err)
	}
}

// More than the socket takes at once: the rest is written as Write
// would, then the answer is read.
func TestDeferLargerThanTheBuffers(t *testing.T) {
	w, peer := pair(t)
	d := deferrer(t, w)
	peer.(*net.TCPConn).SetReadBuffer(64 << 10)
	w.(interface{ SetWriteBuffer(int) error }).SetWriteBuffer(64 << 10)
	data := make([]byte, 2<<20)
	rand.Read(data)
	go func() {
		got := make([]byte, len(data))
		if _, err := io.ReadFull(peer, got); err != nil || !bytes.Equal(got, data) {
			peer.Write([]byte("bad"))
			return
		}
		peer.Write([]byte("ok!"))
	}()
	d.Defer(data)
	w.SetDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 3)
	if _, err := io.ReadFull(w, got); err != nil || string(got) != "ok!" {
		t.Fatalf("answer %q, %v; want \"ok!\"", got, err)
	}
}

// A peer that closed the connection while it was idle (its FIN already
// seen by the poller) makes the Read fail at once, not at its deadline:
// the write draws a reset, which wakes the wait.
func TestDeferToAClosedPeerFailsFast(t *testing.T) {
	w, peer := pair(t)
	d := deferrer(t, w)
	peer.Close()
	// Let the FIN arrive and the poller report it: a Read with a short
	// deadline that sees the end.
	w.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := w.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read before: %v, want io.EOF", err)
	}
	d.Defer([]byte("GET / HTTP/1.1\r\n\r\n"))
	w.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err := w.Read(make([]byte, 8))
	if err == nil {
		t.Fatal("Read after Defer to a closed peer succeeded")
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Read waited for its deadline (%v, %v); want a prompt failure", err, time.Since(start))
	}
}

// Defer then a deadline already past: the Read fails with the deadline,
// and nothing was sent.
func TestDeferPastTheDeadline(t *testing.T) {
	w, peer := pair(t)
	d := deferrer(t, w)
	d.Defer([]byte("never"))
	w.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := w.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want the deadline's error", err)
	}
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := peer.Read(make([]byte, 8)); n != 0 {
		t.Errorf("the peer received %d bytes", n)
	}
}

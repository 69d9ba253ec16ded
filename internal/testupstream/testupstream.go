// Package testupstream serves a minimal upstream API on loopback for the
// gateway's benchmarks: raw HTTP/1.1, so that what a benchmark measures is
// keyward's work, not the upstream's. Only tests import it.
package testupstream

import (
	"bufio"
	"net"
	"testing"
)

// Raw answers every request on a keep-alive connection with a 27-byte JSON
// body when want (a whole header line, "Name: value") is among its header
// lines, else with 401, so that a benchmark's 200s prove the credential
// was injected. extra is added to the 200's head as it is (header lines,
// each ending in CRLF). It reads heads only: requests must have no body.
// It returns the address it listens on, until tb's cleanup.
func Raw(tb testing.TB, want, extra string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	ok := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra + "Content-Length: 27\r\n\r\n{\"ok\":true,\"service\":\"up\"}\n")
	refused := []byte("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
	wantLine := want + "\r\n"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c, wantLine, ok, refused)
		}
	}()
	return ln.Addr().String()
}

func serve(c net.Conn, wantLine string, ok, refused []byte) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		authorized := false
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
			authorized = authorized || string(line) == wantLine
		}
		answer := refused
		if authorized {
			answer = ok
		}
		if _, err := c.Write(answer); err != nil {
			return
		}
	}
}

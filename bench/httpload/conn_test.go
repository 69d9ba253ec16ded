package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		status     int
		keep, fail bool
		rest       string
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT", 200, true, false, "NEXT"},
		{"chunked", "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nTrailer: a\r\n\r\nNEXT", 201, true, false, "NEXT"},
		{"close", "HTTP/1.1 404 Not Found\r\nconnection: Close\r\ncontent-length: 0\r\n\r\nNEXT", 404, false, false, "NEXT"},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, false, false, ""},
		{"no length reads to EOF", "HTTP/1.1 200 OK\r\n\r\nall of it", 200, false, false, ""},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\nNEXT", 204, true, false, "NEXT"},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", 0, false, true, ""},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, false, true, ""},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, false, true, ""},
		{"truncated", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, false, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			status, keep, err := readResponse(br, false)
			if tc.fail {
				if err == nil {
					t.Fatalf("no error for %q", tc.in)
				}
				return
			}
			if err != nil || status != tc.status || keep != tc.keep {
				t.Fatalf("got %d keep=%v err=%v, want %d keep=%v", status, keep, err, tc.status, tc.keep)
			}
			rest, _ := br.Peek(br.Buffered())
			if string(rest) != tc.rest {
				t.Fatalf("left %q unread, want %q", rest, tc.rest)
			}
		})
	}
}

// TestRoundTripAgainstNetHTTP checks the client against Go's server: the
// request arrives as built, and several responses share one connection.
func TestRoundTripAgainstNetHTTP(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, r.ContentLength)
		r.Body.Read(b)
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("X-A")+" "+string(b))
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(strings.Repeat("x", 5000))) // chunked: no length set, larger than the buffer
	}))
	defer srv.Close()
	tg, err := parseTarget(srv.URL + "/p?q=1")
	if err != nil {
		t.Fatal(err)
	}
	req := buildRequest("POST", tg, []string{"X-A: b"}, `{"k":1}`)
	c, err := dial(tg.host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for range 3 {
		status, keep, err := c.roundTrip(req, false)
		if err != nil || status != http.StatusAccepted || !keep {
			t.Fatalf("got %d keep=%v err=%v", status, keep, err)
		}
	}
	if len(got) != 3 || got[0] != `POST /p?q=1 b {"k":1}` {
		t.Fatalf("server saw %q", got)
	}
}

func TestParseTargetRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1/", "https://127.0.0.1/", "http://example.com/", "://"} {
		if _, err := parseTarget(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

package testupstream

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

func TestRawAnswersByCredential(t *testing.T) {
	addr := Raw(t, "Authorization: Bearer k", "Date: Sun, 06 Dec 2026 20:00:00 GMT\r\n")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, tc := range []struct {
		auth string
		want int
		date string
		body string
	}{
		{"Bearer k", 200, "Sun, 06 Dec 2026 20:00:00 GMT", "{\"ok\":true,\"service\":\"up\"}\n"},
		{"Bearer other", 401, "", ""},
		{"Bearer k", 200, "Sun, 06 Dec 2026 20:00:00 GMT", "{\"ok\":true,\"service\":\"up\"}\n"}, // the same connection, kept alive
	} {
		if _, err := io.WriteString(c, "GET /v1/ping HTTP/1.1\r\nHost: up\r\nAuthorization: "+tc.auth+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.want || resp.Header.Get("Date") != tc.date || string(body) != tc.body {
			t.Errorf("%s: %d %q %q", tc.auth, resp.StatusCode, resp.Header.Get("Date"), body)
		}
	}
}

package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func TestReprDigestSHA256(t *testing.T) {
	sum := sha256.Sum256([]byte("db"))
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	for _, tc := range []struct {
		fields []string
		ok     bool
	}{
		{[]string{"sha-256=:" + b64 + ":"}, true},
		{[]string{"sha-512=:AAAA:, sha-256=:" + b64 + ":"}, true},
		{[]string{"sha-512=:AAAA:", "sha-256=:" + b64 + ":"}, true},
		{nil, false},
		{[]string{"sha-256=" + b64}, false},             // not a byte sequence
		{[]string{"sha-256=:AAAA:"}, false},             // too short for SHA-256
		{[]string{"sha-256=:" + b64[:10] + ":"}, false}, // not base64 of 32 bytes
	} {
		got, ok := reprDigestSHA256(tc.fields)
		if ok != tc.ok || ok && !bytes.Equal(got, sum[:]) {
			t.Errorf("%q: %x, %v; want ok=%v", tc.fields, got, ok, tc.ok)
		}
	}
}

// The Repr-Digest field comes from the server (or whatever answers in its
// place): any value is parsed without panicking, and a hit is 32 bytes.
func FuzzReprDigestSHA256(f *testing.F) {
	f.Add("sha-256=:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ":")
	f.Add("sha-512=:AAAA:, sha-256=::")
	f.Add(",,:=")
	f.Fuzz(func(t *testing.T, field string) {
		if b, ok := reprDigestSHA256([]string{field}); ok && len(b) != sha256.Size {
			t.Fatalf("%q gave %d bytes", field, len(b))
		}
	})
}

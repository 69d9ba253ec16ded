package testtls

import (
	"crypto/tls"

	"testing"
)

// A client that trusts Pool completes a handshake with the certificate on
// 127.0.0.1, and one that does not fails.
func TestSelfSigned(t *testing.T) {
	c := SelfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{c.TLS(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	dial := func(cfg *tls.Config) error {
		conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := dial(&tls.Config{RootCAs: c.Pool}); err != nil {
		t.Errorf("a client trusting the pool: %v", err)
	}
	if err := dial(&tls.Config{RootCAs: SelfSigned(t).Pool}); err == nil {
		t.Error("a client trusting another certificate completed the handshake")
	}

}

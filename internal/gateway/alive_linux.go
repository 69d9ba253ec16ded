package gateway

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// alive reports whether a pooled connection can still carry a request:
// a non-blocking peek at the socket finds no FIN, reset or stray bytes
// from the upstream. One syscall, paid only by requests whose body could
// not be sent again after a failure.
func alive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		// EAGAIN: nothing to read, the connection is open. 0 bytes: the
		// upstream closed it; bytes: it sent something unasked.
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = errors.Is(rerr, syscall.EAGAIN)
		return true // never wait
	})
	return err == nil && ok
}

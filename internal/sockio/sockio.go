package sockio

import "net"

// Deferrer is implemented by the connections Wrap returns on Linux. Defer
// keeps a copy of p to be written at the start of the next Read (or before
// the next Write) instead of at once. That Read then sends it and waits in
// Go's poller before it reads, skipping the read that would only find
// nothing (a system call, ≈ 1 µs on some virtual machines): for a request
// whose answer cannot arrive before it is sent, on a connection used by
// one goroutine at a time. An error writing it is that Read's (Op
// "write"); if that Read fails before writing (a deadline already past, a
// closed connection), the bytes are dropped.
type Deferrer interface {
	Defer(p []byte)
}

// Listener returns ln with the connections it accepts wrapped (Wrap).
func Listener(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

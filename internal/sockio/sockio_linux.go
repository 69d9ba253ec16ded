//go:build linux

package sockio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Wrap returns c reading and writing with raw system calls when it is a
// *net.TCPConn, else c.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	w := &conn{TCPConn: tc, rc: rc}
	w.readFn, w.writeFn, w.sendThenReadFn = w.read, w.write, w.sendThenRead
	return w
}

// conn is a *net.TCPConn whose Read and Write go through rc. The state of
// the call under way sits in the struct so that rc's callbacks are method
// values made once (a closure per call would be an allocation); rmu and
// wmu keep concurrent Reads (or Writes) of one connection apart, as the
// net package's own locks do.
type conn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerr   syscall.Errno
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werr    syscall.Errno
	writeFn func(uintptr) bool

	// pending is what Defer holds (under wmu); out, on, oerr and ostall
	// are the state of its sending by the next Read (under rmu).
	pending        []byte
	out            []byte
	on             int
	oerr           syscall.Errno
	ostall         bool
	sendThenReadFn func(uintptr) bool
}

// Defer implements Deferrer.
func (c *conn) Defer(p []byte) {
	c.wmu.Lock()
	c.pending = append(c.pending, p...)
	c.wmu.Unlock()
}

func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerr = p, 0, 0
	c.wmu.Lock()
	out := c.pending
	c.pending = nil
	c.wmu.Unlock()
	var err error
	if len(out) == 0 {
		err = c.rc.Read(c.readFn)
	} else {
		err = c.sendAndRead(out)
	}
	c.rbuf = nil
	if err != nil {
		return 0, renameOp(err, "read")
	}
	if c.rerr != 0 {
		return 0, c.opError("read", c.rerr)
	}
	if c.rn == 0 {
		return 0, io.EOF
	}
	return c.rn, nil
}

// read is rc's callback: false asks the poller to wait for readability.
func (c *conn) read(fd uintptr) bool {
	for {
		n, e := sysRead(fd, c.rbuf)
		switch e {
		case 0:
			c.rn = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = e
			return true
		}
	}
}

// maxKept bounds the memory of a sent Defer kept for the next one: a
// request head, not a large body.
const maxKept = 16 << 10

// sendAndRead writes out (what Defer held) and reads: both in one
// RawConn.Read, whose callback writes, then reports nothing to read
// without trying, so that the poller waits for the answer. Going to the
// poller at once is safe because the callback runs after RawConn.Read
// reset the connection's readiness: whatever arrives after the write
// (the answer, or the reset a closed peer sends) is a new event that wakes
// the wait. If the socket takes only part of out, the rest is written as
// Write would, and a plain read follows.
func (c *conn) sendAndRead(out []byte) error {
	c.out, c.on, c.oerr, c.ostall = out, 0, 0, false
	err := c.rc.Read(c.sendThenReadFn)
	if err == nil && c.oerr != 0 {
		err = c.opError("write", c.oerr)
	}
	if err == nil && c.ostall {
		if _, err = c.Write(out[c.on:]); err == nil {
			err = c.rc.Read(c.readFn)
		}
	}
	c.out = nil
	if cap(out) <= maxKept {
		c.wmu.Lock()
		if c.pending == nil {
			c.pending = out[:0] // its memory serves the next Defer
		}
		c.wmu.Unlock()
	}
	return err
}

// sendThenRead is rc's callback for sendAndRead.
func (c *conn) sendThenRead(fd uintptr) bool {
	if c.on < len(c.out) {
		switch e := writeFrom(fd, c.out, &c.on); e {
		case 0:
			return false // what comes next answers what was just sent: wait
		case syscall.EAGAIN:
			c.ostall = true
		default:
			c.oerr = e
		}
		return true
	}
	return c.read(fd)
}

// Write writes what Defer holds, if anything, then p.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.pending) > 0 {
		out := c.pending
		c.pending = c.pending[:0]
		if _, err := c.writeLocked(out); err != nil {
			return 0, err
		}
	}
	return c.writeLocked(p)
}

func (c *conn) writeLocked(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n := c.wn
	c.wbuf = nil
	if err != nil {
		return n, renameOp(err, "write")
	}
	if c.werr != 0 {
		return n, c.opError("write", c.werr)
	}
	return n, nil
}

// write is rc's callback: it writes until all of wbuf is out (true) or
// the socket's buffer is full (false: the poller waits for writability).
func (c *conn) write(fd uintptr) bool {
	switch e := writeFrom(fd, c.wbuf, &c.wn); e {
	case 0:
	case syscall.EAGAIN:
		return false
	default:
		c.werr = e
	}
	return true
}

// writeFrom writes p from *done on, advancing *done, until all of it is
// out (0), the socket's buffer is full (EAGAIN) or an error.
func writeFrom(fd uintptr, p []byte, done *int) syscall.Errno {
	for *done < len(p) {
		n, e := sysWrite(fd, p[*done:])
		switch e {
		case 0:
			*done += n
		case syscall.EINTR:
		default:
			return e
		}
	}
	return 0
}

func (c *conn) opError(op string, e syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, e)}
}

// renameOp gives an error of the raw connection ("raw-read", "raw-write":
// a deadline, a closed connection) the operation's name the net package's
// Read and Write would give it.
func renameOp(err error, op string) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op
	}
	return err
}

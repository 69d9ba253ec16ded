package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// rawproxy is a reference target: the floor of a proxy written in Go on
// this machine, to tell how much of the gateway's cost any Go proxy pays.
//
// It is NOT a product HTTP implementation and exists only to measure that
// floor. It speaks just enough HTTP/1.1 for bench/httpload's requests, the
// start-up probe and the bench upstream's answers: a request or status
// line, header lines up to a blank line, and a body of Content-Length
// bytes. Anything else (HTTP/1.0, Transfer-Encoding, 1xx answers, a
// response without Content-Length, an over-long head, any I/O error) closes
// the client's connection. No timeouts, no retries, no hop-by-hop header
// handling beyond "Connection: close".
//
// Each client connection has one goroutine and, from its first request on,
// one keep-alive connection to the upstream. Every request's Authorization
// header is replaced by the key.
//
// With -audit DIR it also appends keyward's audit entry of each call to an
// audit log in DIR (rawaudit.go): the target rawproxy-audit.
func rawproxy(args []string) {
	var auditDir string
	addr, up, key := proxyFlags("rawproxy", "127.0.0.1:19484", args, func(fs *flag.FlagSet) {
		fs.StringVar(&auditDir, "audit", "", "append keyward's audit entry of every call to an audit log in this directory")
	})
	var calls *callLog
	var err error
	if auditDir != "" {
		calls, err = openCallLog(context.Background(), auditDir)
	}
	var ln net.Listener
	if err == nil {
		ln, err = net.Listen("tcp", addr)
	}
	if err == nil {
		err = serveRawListener(ln, up.Host, "Bearer "+key, calls)
	}
	fmt.Fprintln(os.Stderr, "rawproxy:", err)
	os.Exit(1)
}

// serveRawListener serves every connection ln accepts, injecting
// "Authorization: auth" and recording each call in calls (when not nil);
// it returns when Accept fails.
func serveRawListener(ln net.Listener, upAddr, auth string, calls *callLog) error {
	authLine := []byte("Authorization: " + auth + "\r\n")
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serveRaw(c, upAddr, authLine, calls)
	}
}

const (
	rawBufSize  = 16 << 10 // each connection's reader and writer; also the longest line
	rawMaxHead  = 64 << 10 // the largest request or response head
	rawMaxBody  = 1 << 30  // the largest Content-Length accepted
	httpVersion = "HTTP/1.1"
)

var errRefused = errors.New("rawproxy: not handled")

// serveRaw forwards the requests of one client connection, one at a time.
func serveRaw(c net.Conn, upAddr string, authLine []byte, calls *callLog) {
	defer c.Close()
	cr, cw := bufio.NewReaderSize(c, rawBufSize), bufio.NewWriterSize(c, rawBufSize)
	var up net.Conn
	var ur *bufio.Reader
	var uw *bufio.Writer
	var req, resp head // reused: their start lines keep their storage
	defer func() {
		if up != nil {
			up.Close()
		}
	}()
	for {
		if _, err := cr.Peek(1); err != nil {
			return // the client closed its connection (or broke it)
		}
		if up == nil {
			var err error
			if up, err = net.Dial("tcp", upAddr); err != nil {
				return
			}
			ur, uw = bufio.NewReaderSize(up, rawBufSize), bufio.NewWriterSize(up, rawBufSize)
		}
		var start time.Time
		if calls != nil {
			start = time.Now()
		}
		err := copyHead(uw, cr, authLine, &req)
		if err != nil || !bytes.HasSuffix(req.start, []byte(" "+httpVersion)) {
			return
		}
		if req.length < 0 {
			req.length = 0 // a request without Content-Length has no body
		}
		if _, err := io.CopyN(uw, cr, req.length); err != nil {
			return
		}
		if err := uw.Flush(); err != nil {
			return
		}
		err = copyHead(cw, ur, nil, &resp)
		if err != nil || !bytes.HasPrefix(resp.start, []byte(httpVersion+" ")) || len(resp.start) < len(httpVersion)+4 {
			return
		}
		code := string(resp.start[len(httpVersion)+1 : len(httpVersion)+4])
		switch {
		case code[0] == '1':
			return
		case code == "204" || code == "304" || bytes.HasPrefix(req.start, []byte("HEAD ")):
			resp.length = 0
		case resp.length < 0:
			return // the body would end when the upstream closes
		}
		if _, err := io.CopyN(cw, ur, resp.length); err != nil {
			return
		}
		if err := cw.Flush(); err != nil {
			return
		}
		if calls != nil {
			calls.record(start, req.start, code, req.length, resp.length)
		}
		if req.close || resp.close {
			return
		}
	}
}

// head is what serveRaw needs from a message head.
type head struct {
	start  []byte // the start line without its line end (a copy)
	length int64  // Content-Length, -1 when absent
	close  bool   // "Connection: close"
}

// copyHead copies one message head from r to w, line by line, up to and
// including the blank line that ends it, and fills h. When authLine is not
// nil, every Authorization header is dropped and authLine is written
// instead. It refuses (errRefused) a Transfer-Encoding header, a bad or
// repeated Content-Length, and a head longer than rawMaxHead.
func copyHead(w *bufio.Writer, r *bufio.Reader, authLine []byte, h *head) error {
	h.start, h.length, h.close = h.start[:0], -1, false
	total := 0
	for first := true; ; first = false {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err // includes bufio.ErrBufferFull for an over-long line
		}
		if total += len(line); total > rawMaxHead {
			return errRefused
		}
		text := bytes.TrimRight(line, "\r\n")
		if first {
			h.start = append(h.start, text...)
			w.Write(line)
			continue
		}
		if len(text) == 0 {
			w.Write(authLine)
			w.Write(line)
			return nil
		}
		name, value, ok := bytes.Cut(text, []byte(":"))
		if !ok {
			return errRefused
		}
		value = bytes.TrimSpace(value)
		switch {
		case authLine != nil && bytes.EqualFold(name, []byte("Authorization")):
			continue // replaced at the end of the head
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return errRefused
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || n > rawMaxBody || h.length >= 0 {
				return errRefused
			}
			h.length = n
		case bytes.EqualFold(name, []byte("Connection")):
			h.close = bytes.EqualFold(value, []byte("close"))
		}
		w.Write(line)
	}
}

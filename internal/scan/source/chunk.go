package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// MaxFragmentSize is the most bytes one Fragment holds. Larger inputs arrive
// as several fragments that overlap by Overlap bytes.
const MaxFragmentSize = 1 << 20

// sniffLen is how much of a file's start is searched for a NUL byte to decide
// that it is binary (the heuristic git and grep use).
const sniffLen = 8 << 10

// errBinary reports that a file looked binary and was not scanned.
var errBinary = errors.New("binary file")

// chunker splits one stream into Fragments. It owns a reusable buffer, so a
// worker scanning thousands of files allocates it once.
type chunker struct {
	buf []byte // len MaxFragmentSize+1: one byte more tells "more follows" from EOF
}

func newChunker() *chunker { return &chunker{buf: make([]byte, MaxFragmentSize+1)} }

// run reads r to its end and calls emit for each fragment, in order.
// Fragments are at most MaxFragmentSize bytes; consecutive ones share Overlap
// bytes; a cut falls after a newline when one lies in the second half of the
// buffer, else inside the (long) line, and StartLine/StartColumn say where
// each fragment begins. If sniff is set and a NUL byte occurs in the first
// sniffLen bytes, run returns errBinary before emitting anything.
//
// The Fragment and its Data are reused after emit returns: emit must not keep
// them. run returns the number of bytes read.
func (c *chunker) run(ctx context.Context, path string, r io.Reader, sniff bool, emit func(*Fragment) error) (int64, error) {
	var (
		n     int   // bytes held in buf
		total int64 // bytes read from r
		line  = 1   // line of buf[0]
		col   = 1   // column of buf[0]
		first = true
		frag  = Fragment{Path: path}
	)
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		m, err := io.ReadFull(r, c.buf[n:])
		n += m
		total += int64(m)
		eof := false
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			eof = true
		case err != nil:
			return total, fmt.Errorf("read %s: %w", path, err)
		}
		if first {
			first = false
			if sniff && bytes.IndexByte(c.buf[:min(n, sniffLen)], 0) >= 0 {
				return total, errBinary
			}
		}
		if eof {
			if n > 0 {
				frag.Data, frag.StartLine, frag.StartColumn = c.buf[:n], line, col
				if err := emit(&frag); err != nil {
					return total, err
				}
			}
			return total, nil
		}
		// The buffer is full and more follows: emit up to a cut, keep the
		// last Overlap bytes before the cut for the next fragment.
		cut := MaxFragmentSize
		if i := bytes.LastIndexByte(c.buf[:cut], '\n'); i >= cut/2 {
			cut = i + 1
		}
		frag.Data, frag.StartLine, frag.StartColumn = c.buf[:cut], line, col
		if err := emit(&frag); err != nil {
			return total, err
		}
		next := cut - Overlap
		line, col = advance(c.buf[:next], line, col)
		n = copy(c.buf, c.buf[next:n])
	}
}

// advance returns the line and column just after b, given those of b[0].
func advance(b []byte, line, col int) (int, int) {
	nl := bytes.Count(b, []byte{'\n'})
	if nl == 0 {
		return line, col + len(b)
	}
	return line + nl, len(b) - bytes.LastIndexByte(b, '\n')
}

// Reader scans r (standard input, a log, a pipe) as one input named name,
// split into fragments like a file. emit is called from the calling
// goroutine; it must not keep the Fragment or its Data after it returns.
// Binary content is scanned too: whoever pipes data in asked for it.
func Reader(ctx context.Context, name string, r io.Reader, emit func(*Fragment) error) (Stats, error) {
	c := newChunker()
	n, err := c.run(ctx, name, r, false, emit)
	st := Stats{Files: 1, Bytes: n}
	return st, err
}

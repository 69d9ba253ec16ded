package source

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// collect gathers copies of the fragments a source emits.
type collect struct{ frags []Fragment }

func (c *collect) emit(f *Fragment) error {
	cp := *f
	cp.Data = bytes.Clone(f.Data)
	cp.LineMap = append([]int(nil), f.LineMap...)
	c.frags = append(c.frags, cp)
	return nil
}

// offsetOf returns the byte offset of (line, col) in data.
func offsetOf(t *testing.T, data []byte, line, col int) int {
	t.Helper()
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			t.Fatalf("line %d beyond input", line)
		}
		off += i + 1
	}
	return off + col - 1
}

// checkFragments verifies that every fragment is the input at the place its
// StartLine/StartColumn name, within the size bound, and that together they
// cover the input with Overlap-byte overlaps.
func checkFragments(t *testing.T, input []byte, frags []Fragment) {
	t.Helper()
	end := 0
	for i, f := range frags {
		if len(f.Data) > MaxFragmentSize {
			t.Fatalf("fragment %d: %d bytes > MaxFragmentSize", i, len(f.Data))
		}
		off := offsetOf(t, input, f.StartLine, f.StartColumn)
		if !bytes.Equal(input[off:off+len(f.Data)], f.Data) {
			t.Fatalf("fragment %d (line %d col %d) does not match the input at offset %d", i, f.StartLine, f.StartColumn, off)
		}
		if i > 0 && end-off != Overlap {
			t.Fatalf("fragment %d overlaps the previous by %d bytes, want %d", i, end-off, Overlap)
		}
		end = off + len(f.Data)
	}
	if end != len(input) {
		t.Fatalf("fragments end at %d, input has %d bytes", end, len(input))
	}
}

func TestReaderSmall(t *testing.T) {
	var c collect
	st, err := Reader(context.Background(), "-", strings.NewReader("a\nb\n"), c.emit)
	if err != nil || st.Bytes != 4 || len(c.frags) != 1 {
		t.Fatalf("Reader = %+v, %v, %d fragments", st, err, len(c.frags))
	}
	f := c.frags[0]
	if f.Path != "-" || f.StartLine != 1 || f.StartColumn != 1 || string(f.Data) != "a\nb\n" {
		t.Fatalf("fragment = %+v", f)
	}
	c = collect{}
	if _, err := Reader(context.Background(), "-", strings.NewReader(""), c.emit); err != nil || len(c.frags) != 0 {
		t.Fatalf("empty input: %v, %d fragments", err, len(c.frags))
	}
}

func TestChunkLongLineStraddle(t *testing.T) {
	// One 8 MB line; a marker straddles the first cut (at MaxFragmentSize).
	input := bytes.Repeat([]byte("abcdefgh"), 1<<20)
	const marker = "MARKER-0123456789-MARKER"
	copy(input[MaxFragmentSize-10:], marker)
	var c collect
	st, err := Reader(context.Background(), "big", bytes.NewReader(input), c.emit)
	if err != nil || st.Bytes != int64(len(input)) {
		t.Fatalf("Reader: %+v, %v", st, err)
	}
	if len(c.frags) < 8 {
		t.Fatalf("%d fragments for 8 MiB", len(c.frags))
	}
	checkFragments(t, input, c.frags)
	whole := 0
	for _, f := range c.frags {
		if f.StartLine != 1 {
			t.Fatalf("StartLine %d in a one-line input", f.StartLine)
		}
		whole += bytes.Count(f.Data, []byte(marker))
	}
	if whole != 1 {
		t.Fatalf("marker seen whole in %d fragments, want 1", whole)
	}
}

func TestChunkManyLines(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for b.Len() < 3<<20 {
		n := rng.IntN(300)
		if rng.IntN(500) == 0 {
			n = 700 << 10 // a few very long lines
		}
		b.Write(bytes.Repeat([]byte{'x'}, n))
		b.WriteByte('\n')
	}
	var c collect
	if _, err := Reader(context.Background(), "f", bytes.NewReader(b.Bytes()), c.emit); err != nil {
		t.Fatal(err)
	}
	checkFragments(t, b.Bytes(), c.frags)
	for i, f := range c.frags[:len(c.frags)-1] {
		if f.Data[len(f.Data)-1] != '\n' && bytes.LastIndexByte(f.Data, '\n') >= MaxFragmentSize/2 {
			t.Fatalf("fragment %d is cut inside a line though a line end was available", i)
		}
	}
}

// endless yields n bytes of 'a' without holding them.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.n == 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), e.n)
	for i := range p[:k] {
		p[i] = 'a'
	}
	e.n -= k
	return int(k), nil
}

func TestReader200MBLine(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MB")
	}
	const size = 200 << 20
	var frags, maxLen int
	var lastEnd int
	st, err := Reader(context.Background(), "-", &endless{n: size}, func(f *Fragment) error {
		frags++
		maxLen = max(maxLen, len(f.Data))
		lastEnd = f.StartColumn - 1 + len(f.Data)
		return nil
	})
	if err != nil || st.Bytes != size {
		t.Fatalf("Reader: %+v %v", st, err)
	}
	if maxLen > MaxFragmentSize || lastEnd != size || frags < 200 {
		t.Fatalf("frags=%d maxLen=%d lastEnd=%d", frags, maxLen, lastEnd)
	}
}

func TestAdvance(t *testing.T) {
	cases := []struct {
		in        string
		line, col int
		wl, wc    int
	}{
		{"", 1, 1, 1, 1},
		{"abc", 1, 1, 1, 4},
		{"abc", 3, 5, 3, 8},
		{"a\nbc", 1, 1, 2, 3},
		{"a\n", 4, 9, 5, 1},
	}
	for _, c := range cases {
		l, col := advance([]byte(c.in), c.line, c.col)
		if l != c.wl || col != c.wc {
			t.Errorf("advance(%q, %d, %d) = %d, %d; want %d, %d", c.in, c.line, c.col, l, col, c.wl, c.wc)
		}
	}
}

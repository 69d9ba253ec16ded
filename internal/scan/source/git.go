package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// GitOptions select what Git reads.
type GitOptions struct {
	// Since limits history to commits after REV (REV..HEAD, or ^REV with
	// AllRefs).
	Since string
	// AllRefs reads the history of every ref (--all), not only HEAD's.
	AllRefs bool
	// Staged reads the index instead of history: the lines added by
	// `git diff --cached` (what the next commit would add).
	Staged bool
	// Workers is how many goroutines call emit (0: GOMAXPROCS).
	Workers int
}

// ErrNotRepository is returned by Git when repo is not inside a git
// repository (or git cannot be run).
var ErrNotRepository = errors.New("not a git repository")

// commitMarker starts each commit header in the log stream. A NUL byte
// cannot begin a diff line, so the header is unambiguous.
const commitFormat = "--format=%x00%H%x00%an%x00%ae%x00%at%x00%s"

// Git scans the lines added in a repository's history (one fragment per file
// per commit, LineMap giving new-file line numbers, commit metadata filled) or,
// with opts.Staged, in its index. It streams `git log -p -U0` and parses it
// incrementally, so memory stays bounded however long the history. An empty
// repository has nothing to scan; a shallow clone scans what it has.
//
// emit is called from opts.Workers goroutines at once and must not keep the
// Fragment's Data after it returns. Stats.Files counts file diffs.
func Git(ctx context.Context, repo string, opts GitOptions, emit func(*Fragment) error) (Stats, error) {
	if repo == "" {
		repo = "."
	}
	if strings.HasPrefix(repo, "-") {
		return Stats{}, fmt.Errorf("git source: repository path %q must not start with '-'", repo)
	}
	if strings.HasPrefix(opts.Since, "-") {
		return Stats{}, fmt.Errorf("git source: --since %q must not start with '-'", opts.Since)
	}
	diffOpts := []string{"-U0", "--no-color", "--no-ext-diff", "--no-textconv", "--no-relative",
		"--src-prefix=a/", "--dst-prefix=b/"}
	var args []string
	if opts.Staged {
		args = append([]string{"diff", "--cached", "--diff-filter=ACM"}, diffOpts...)
	} else {
		args = append([]string{"log", "-p", "--full-history", "--diff-filter=tuxdb", "--no-show-signature", commitFormat}, diffOpts...)
		if opts.AllRefs {
			args = append(args, "--all")
		}
		args = append(args, "--end-of-options")
		switch {
		case opts.Since != "" && opts.AllRefs:
			args = append(args, "^"+opts.Since)
		case opts.Since != "":
			args = append(args, opts.Since+"..HEAD")
		}
	}
	st, err := runGit(ctx, repo, args, opts.Workers, emit)
	var gitErr *gitError
	if errors.As(err, &gitErr) {
		// Only now, on the slow path, tell "not a repository" and "no
		// commits yet" from other failures: the pre-commit path runs one
		// git process, not three.
		if out, err := gitOutput(ctx, repo, "rev-parse", "--git-dir"); err != nil {
			return st, fmt.Errorf("%s: %w: %s", repo, ErrNotRepository, firstLine(out))
		}
		if _, err := gitOutput(ctx, repo, "rev-parse", "--verify", "-q", "HEAD^{commit}"); err != nil && st.Commits == 0 {
			return st, nil // no commits yet: nothing to scan
		}
	}
	return st, err
}

// gitError is a git command that exited with an error status.
type gitError struct {
	args   string
	err    error
	stderr string
}

func (e *gitError) Error() string { return fmt.Sprintf("git %s: %v: %s", e.args, e.err, e.stderr) }
func (e *gitError) Unwrap() error { return e.err }

// gitOutput runs a short git command and returns its trimmed output.
func gitOutput(ctx context.Context, repo string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// runGit streams one git command's diff output through the parser and a pool
// of workers that call emit.
func runGit(ctx context.Context, repo string, args []string, workers int, emit func(*Fragment) error) (Stats, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Stats{}, err
	}
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return Stats{}, fmt.Errorf("run git: %w", err)
	}

	frags := make(chan *Fragment, 2*workers)
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		emitErr error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range frags {
				if ctx.Err() != nil {
					continue
				}
				if err := emit(f); err != nil {
					errOnce.Do(func() { emitErr = err; cancel() })
				}
				putBuf(f.Data)
			}
		}()
	}
	p := newDiffParser(func(f *Fragment) error {
		select {
		case frags <- f:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	parseErr := p.parse(stdout)
	close(frags)
	wg.Wait()
	if parseErr != nil {
		cancel() // stop git before waiting for it
	}
	io.Copy(io.Discard, stdout)
	waitErr := cmd.Wait()
	st := p.stats
	switch {
	case emitErr != nil:
		return st, emitErr
	case parseErr != nil && ctx.Err() == nil:
		return st, fmt.Errorf("read git %s output: %w", args[0], parseErr)
	case waitErr != nil && ctx.Err() == nil:
		return st, &gitError{args: args[0], err: waitErr, stderr: firstLine(stderr.String())}
	}
	return st, context.Cause(ctx)
}

// limitedBuffer keeps the first 4 KiB written to it (git's stderr).
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// bufPool recycles fragment buffers between the parser and the workers.
var bufPool sync.Pool

func getBuf() []byte {
	if b, ok := bufPool.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 4096)
}

func putBuf(b []byte) {
	if cap(b) <= MaxFragmentSize+1 {
		bufPool.Put(&b)
	}
}

// maxHeaderLine bounds how much of a non-content line (a commit header, a
// file name) the parser keeps.
const maxHeaderLine = 64 << 10

// diffParser reads `git log -p` / `git diff` output (unified diff, -U0) and
// builds fragments of the added lines of each file of each commit.
type diffParser struct {
	emit  func(*Fragment) error
	stats Stats

	meta     Fragment // commit metadata of the current commit
	path     string   // new path of the current file; "" while unknown or deleted
	oldLeft  int      // lines of the current hunk still expected, old side
	newLeft  int      //   and new side
	newLine  int      // new-file line number of the next '+' or ' ' line
	fileSeen bool     // the current file diff has been counted

	b fragBuilder
}

func newDiffParser(emit func(*Fragment) error) *diffParser {
	p := &diffParser{emit: emit}
	p.b.emit = emit
	return p
}

func (p *diffParser) inHunk() bool { return p.oldLeft > 0 || p.newLeft > 0 }

// parse consumes r to its end. Lines longer than the reader's buffer arrive
// in pieces; an added line's pieces stream into the fragment builder, so one
// enormous line never has to fit in memory at once.
func (p *diffParser) parse(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		cont    bool   // the current line continues from the previous piece
		adding  bool   // the current line is an added line, being kept
		discard bool   // the current line is an added line of a skipped file
		hdr     []byte // the current non-content line, up to maxHeaderLine
	)
	for {
		piece, err := br.ReadSlice('\n')
		if len(piece) > 0 {
			complete := piece[len(piece)-1] == '\n'
			if complete {
				piece = piece[:len(piece)-1]
			}
			switch {
			case cont && adding:
				if err := p.b.write(piece); err != nil {
					return err
				}
			case cont && discard:
			case cont:
				if len(hdr) < maxHeaderLine {
					hdr = append(hdr, piece[:min(len(piece), maxHeaderLine-len(hdr))]...)
				}
			case p.inHunk() && len(piece) > 0 && piece[0] == '+':
				p.newLeft--
				p.newLine++
				if p.path == "" {
					// A hunk of a file that is not scanned: consume it.
					discard = true
					break
				}
				adding = true
				if err := p.b.startLine(p.newLine - 1); err != nil {
					return err
				}
				if err := p.b.write(piece[1:]); err != nil {
					return err
				}
			default:
				hdr = append(hdr[:0], piece[:min(len(piece), maxHeaderLine)]...)
			}
			cont = !complete
			if complete && !adding && !discard {
				if err := p.line(hdr); err != nil {
					return err
				}
			}
			if complete {
				adding, discard = false, false
			}
		}
		switch {
		case err == nil || err == bufio.ErrBufferFull:
		case err == io.EOF:
			if cont && !adding && !discard {
				if err := p.line(hdr); err != nil {
					return err
				}
			}
			return p.endFile()
		default:
			return err
		}
	}
}

// line handles one complete line that is not an added line.
func (p *diffParser) line(l []byte) error {
	if p.inHunk() {
		switch {
		case len(l) > 0 && l[0] == '-':
			p.oldLeft--
			return nil
		case len(l) > 0 && l[0] == ' ':
			p.oldLeft--
			p.newLeft--
			p.newLine++
			return nil
		case len(l) > 0 && l[0] == '\\': // "\ No newline at end of file"
			return nil
		}
		p.oldLeft, p.newLeft = 0, 0 // malformed hunk: treat the line as a header
	}
	switch {
	case len(l) > 0 && l[0] == 0:
		if err := p.endFile(); err != nil {
			return err
		}
		p.commit(l[1:])
	case bytes.HasPrefix(l, []byte("diff --git ")):
		return p.endFile()
	case bytes.HasPrefix(l, []byte("+++ ")):
		p.path = diffPath(string(l[4:]))
	case bytes.HasPrefix(l, []byte("\\ ")):
	case bytes.HasPrefix(l, []byte("@@ ")):
		oldN, newStart, newN, ok := parseHunkHeader(l)
		if !ok {
			return nil
		}
		if p.path != "" && !p.fileSeen {
			p.fileSeen = true
			p.stats.Files++
			p.b.reset(p.meta, p.path)
		}
		p.oldLeft, p.newLeft, p.newLine = oldN, newN, newStart
	}
	return nil
}

// endFile flushes the current file's fragment.
func (p *diffParser) endFile() error {
	p.oldLeft, p.newLeft = 0, 0
	p.path = ""
	p.fileSeen = false
	p.stats.Bytes += int64(p.b.total)
	p.b.total = 0
	return p.b.flush()
}

// commit parses "%H\0%an\0%ae\0%at\0%s".
func (p *diffParser) commit(h []byte) {
	p.stats.Commits++
	f := strings.SplitN(string(h), "\x00", 5)
	for len(f) < 5 {
		f = append(f, "")
	}
	p.meta = Fragment{Commit: f[0], Author: f[1], Email: f[2], Message: f[4]}
	if sec, err := strconv.ParseInt(f[3], 10, 64); err == nil {
		p.meta.Date = time.Unix(sec, 0).UTC()
	}
}

// diffPath extracts the new path from the text after "+++ ": "b/path",
// a C-quoted "\"b/path\"", or "/dev/null" (deleted: "").
func diffPath(s string) string {
	s = strings.TrimSuffix(s, "\t") // git adds a tab after names with spaces
	if strings.HasPrefix(s, `"`) {
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
	}
	if s == "/dev/null" {
		return ""
	}
	return strings.TrimPrefix(s, "b/")
}

// parseHunkHeader parses "@@ -a[,b] +c[,d] @@..." into b, c and d
// (a missing count is 1).
func parseHunkHeader(l []byte) (oldN, newStart, newN int, ok bool) {
	s := string(l[3:])
	end := strings.Index(s, " @@")
	if end < 0 {
		return 0, 0, 0, false
	}
	oldR, newR, found := strings.Cut(s[:end], " ")
	if !found || !strings.HasPrefix(oldR, "-") || !strings.HasPrefix(newR, "+") {
		return 0, 0, 0, false
	}
	_, oldN, ok1 := parseRange(oldR[1:])
	newStart, newN, ok2 := parseRange(newR[1:])
	return oldN, newStart, newN, ok1 && ok2
}

func parseRange(s string) (start, n int, ok bool) {
	a, b, hasCount := strings.Cut(s, ",")
	start, err := strconv.Atoi(a)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	n = 1
	if hasCount {
		if n, err = strconv.Atoi(b); err != nil || n < 0 {
			return 0, 0, false
		}
	}
	return start, n, true
}

// fragBuilder collects the added lines of one file diff into fragments of at
// most MaxFragmentSize bytes; a full fragment is emitted and the next one
// starts with its last Overlap bytes, like a split file.
type fragBuilder struct {
	emit  func(*Fragment) error
	meta  Fragment // Path and commit metadata
	data  []byte
	col   int   // column of data[0] in its line
	start []int // offset in data where each line begins
	lines []int // new-file line number of each line
	total int   // bytes of added lines seen for this file
}

func (b *fragBuilder) reset(meta Fragment, path string) {
	b.meta = meta
	b.meta.Path = path
	b.data, b.start, b.lines, b.col = nil, nil, nil, 1
}

// startLine begins a new line with new-file number n.
func (b *fragBuilder) startLine(n int) error {
	if b.data == nil {
		b.data = getBuf()
	}
	if len(b.start) > 0 {
		if err := b.write([]byte{'\n'}); err != nil {
			return err
		}
		b.total-- // the separator is not content
	}
	b.start = append(b.start, len(b.data))
	b.lines = append(b.lines, n)
	return nil
}

// write appends to the current line, emitting full fragments as it goes.
func (b *fragBuilder) write(p []byte) error {
	b.total += len(p)
	for len(p) > 0 {
		room := MaxFragmentSize - len(b.data)
		if room == 0 {
			if err := b.carry(); err != nil {
				return err
			}
			continue
		}
		k := min(room, len(p))
		b.data = append(b.data, p[:k]...)
		p = p[k:]
	}
	return nil
}

// carry emits the full fragment and starts the next with its last Overlap bytes.
func (b *fragBuilder) carry() error {
	old, oldStart, oldLines, oldCol := b.data, b.start, b.lines, b.col
	s := len(old) - Overlap
	i := sort.Search(len(oldStart), func(i int) bool { return oldStart[i] > s }) - 1
	tail := append(getBuf(), old[s:]...) // copied before flush hands old away
	if err := b.flush(); err != nil {
		putBuf(tail)
		return err
	}
	b.data = tail
	if i == 0 {
		b.col = oldCol + s
	} else {
		b.col = s - oldStart[i] + 1
	}
	b.start = append(b.start[:0], 0)
	for _, st := range oldStart[i+1:] {
		b.start = append(b.start, st-s)
	}
	b.lines = append(b.lines[:0], oldLines[i:]...)
	return nil
}

// flush emits what has been collected, if anything.
func (b *fragBuilder) flush() error {
	if len(b.start) == 0 {
		if b.data != nil {
			putBuf(b.data)
		}
		b.data = nil
		return nil
	}
	f := b.meta
	f.Data = b.data
	f.LineMap = b.lines
	f.StartLine = b.lines[0]
	f.StartColumn = b.col
	b.data, b.start, b.lines, b.col = nil, nil, nil, 1
	return b.emit(&f)
}

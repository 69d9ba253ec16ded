package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// DefaultMaxSize is the size above which Dir skips a file.
const DefaultMaxSize = 10 << 20

// maxErrors bounds Stats.Errors; the counters stay exact beyond it.
const maxErrors = 100

// DirOptions tune Dir.
type DirOptions struct {
	// NoIgnore scans files that .gitignore files exclude. .git directories
	// are skipped regardless.
	NoIgnore bool
	// MaxSize skips files larger than this many bytes (0: DefaultMaxSize).
	MaxSize int64
	// Workers is how many files are read (and emitted) at once
	// (0: GOMAXPROCS).
	Workers int
	// FollowSymlinks follows symbolic links to files and directories.
	// Off by default: links are skipped, so a link loop cannot hang a scan.
	FollowSymlinks bool
	// Skip, when not nil, is asked about every file and directory path (as
	// reported in Fragment.Path); true leaves it out (a .keywardignore glob).
	Skip func(path string) bool
}

// Stats counts what a source read and what it left out.
type Stats struct {
	Files         int64   // files (or file diffs, for git sources) scanned
	Bytes         int64   // bytes scanned
	Commits       int64   // commits read (git history only)
	SkippedBinary int64   // files with a NUL byte in their first 8 KiB
	SkippedLarge  int64   // files over MaxSize
	Unreadable    int64   // files and directories that could not be read
	Errors        []error // why, for the first 100 unreadable entries
}

func (s *Stats) addErr(err error) {
	s.Unreadable++
	if len(s.Errors) < maxErrors {
		s.Errors = append(s.Errors, err)
	}
}

// Dir scans files and directory trees. Each root is a file or a directory.
// Below a directory root a fragment's Path is relative to that root, slash
// separated ("cmd/main.go"), so allowlist globs and fingerprints do not depend
// on where the scan was started; for a file root it is the path as given.
// A caller that scans several roots and wants to tell them apart scans them
// one call at a time.
//
// Directories are walked by one goroutine; opts.Workers goroutines read files
// and call emit, so emit must be safe for concurrent use. emit must not keep
// the Fragment or its Data after it returns (buffers are reused). A file
// larger than MaxFragmentSize arrives as several overlapping fragments.
//
// Unreadable files and directories are counted in Stats and the walk goes on;
// Dir returns an error only for a root that does not exist, a cancelled
// context, or an error from emit (which stops the scan).
func Dir(ctx context.Context, roots []string, opts DirOptions, emit func(*Fragment) error) (Stats, error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &dirScan{opts: opts, emit: emit, cancel: cancel, jobs: make(chan fileJob, 4*opts.Workers)}

	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.worker(ctx)
		}()
	}
	var rootErr error
	for _, root := range roots {
		if err := d.root(ctx, root); err != nil {
			rootErr = err
			break
		}
	}
	close(d.jobs)
	wg.Wait()

	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.emitErr != nil:
		return d.stats, d.emitErr
	case rootErr != nil:
		return d.stats, rootErr
	}
	return d.stats, ctx.Err()
}

type fileJob struct {
	os   string // path to open
	path string // path to report
}

type dirScan struct {
	opts   DirOptions
	emit   func(*Fragment) error
	cancel context.CancelFunc
	jobs   chan fileJob

	mu      sync.Mutex
	stats   Stats
	emitErr error
}

func (d *dirScan) update(f func(*Stats)) {
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}

func (d *dirScan) root(ctx context.Context, root string) error {
	fi, err := os.Stat(root) // a root named on the command line is followed even if a link
	if err != nil {
		return fmt.Errorf("scan %s: %w", root, err)
	}
	display := filepath.ToSlash(filepath.Clean(root))
	if !fi.IsDir() {
		if fi.Mode().IsRegular() && (d.opts.Skip == nil || !d.opts.Skip(display)) {
			return d.send(ctx, fileJob{os: root, path: display})
		}
		return nil
	}
	var ig *ignorer
	if !d.opts.NoIgnore {
		ig = &ignorer{}
		if f, err := os.Open(filepath.Join(root, ".git", "info", "exclude")); err == nil {
			ig = ig.with(parseIgnore("", f))
			f.Close()
		}
	}
	var stack []os.FileInfo
	if d.opts.FollowSymlinks {
		stack = []os.FileInfo{fi}
	}
	return d.walk(ctx, root, "", ig, stack)
}

// walk lists one directory. dirOS is its path on disk, rel its path below the
// root ("" for the root). stack holds the directories being walked, only when
// symlinks are followed, to refuse a link back to one of them.
func (d *dirScan) walk(ctx context.Context, dirOS, rel string, ig *ignorer, stack []os.FileInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(dirOS)
	if err != nil {
		d.update(func(s *Stats) { s.addErr(err) })
		if len(entries) == 0 {
			return nil
		}
	}
	if ig != nil {
		for _, e := range entries {
			if e.Name() == ".gitignore" && e.Type().IsRegular() {
				if f, err := os.Open(filepath.Join(dirOS, ".gitignore")); err == nil {
					ig = ig.with(parseIgnore(rel, f))
					f.Close()
				}
				break
			}
		}
	}
	for _, e := range entries {
		name := e.Name()
		if name == ".git" {
			continue
		}
		childOS := filepath.Join(dirOS, name)
		childRel := name
		if rel != "" {
			childRel = rel + "/" + name
		}
		typ := e.Type()
		var target os.FileInfo
		if typ&fs.ModeSymlink != 0 {
			if !d.opts.FollowSymlinks {
				continue
			}
			target, err = os.Stat(childOS)
			if err != nil {
				d.update(func(s *Stats) { s.addErr(err) })
				continue
			}
			typ = target.Mode().Type()
		}
		isDir := typ.IsDir()
		if ig != nil && ig.ignored(childRel, isDir) {
			continue
		}
		if d.opts.Skip != nil && d.opts.Skip(childRel) {
			continue
		}
		switch {
		case isDir:
			var sub []os.FileInfo
			if d.opts.FollowSymlinks {
				if target == nil {
					if target, err = os.Stat(childOS); err != nil {
						d.update(func(s *Stats) { s.addErr(err) })
						continue
					}
				}
				if onStack(stack, target) {
					continue // a link back to a directory being walked: a loop
				}
				sub = append(stack[:len(stack):len(stack)], target)
			}
			if err := d.walk(ctx, childOS, childRel, ig, sub); err != nil {
				return err
			}
		case typ.IsRegular():
			if err := d.send(ctx, fileJob{os: childOS, path: childRel}); err != nil {
				return err
			}
		}
	}
	return nil
}

func onStack(stack []os.FileInfo, fi os.FileInfo) bool {
	for _, s := range stack {
		if os.SameFile(s, fi) {
			return true
		}
	}
	return false
}

func (d *dirScan) send(ctx context.Context, j fileJob) error {
	select {
	case d.jobs <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *dirScan) worker(ctx context.Context) {
	c := newChunker()
	for j := range d.jobs {
		if ctx.Err() != nil {
			continue // drain
		}
		d.file(ctx, c, j)
	}
}

func (d *dirScan) file(ctx context.Context, c *chunker, j fileJob) {
	f, err := os.Open(j.os)
	if err != nil {
		d.update(func(s *Stats) { s.addErr(err) })
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		d.update(func(s *Stats) { s.addErr(err) })
		return
	}
	if !fi.Mode().IsRegular() {
		return
	}
	if fi.Size() > d.opts.MaxSize {
		d.update(func(s *Stats) { s.SkippedLarge++ })
		return
	}
	var emitErr error
	n, err := c.run(ctx, j.path, f, true, func(fr *Fragment) error {
		if emitErr = d.emit(fr); emitErr != nil {
			return emitErr
		}
		return nil
	})
	switch {
	case err == nil:
		d.update(func(s *Stats) { s.Files++; s.Bytes += n })
	case errors.Is(err, errBinary):
		d.update(func(s *Stats) { s.SkippedBinary++ })
	case emitErr != nil:
		d.mu.Lock()
		if d.emitErr == nil {
			d.emitErr = emitErr
		}
		d.mu.Unlock()
		d.cancel()
	case ctx.Err() != nil:
	default:
		d.update(func(s *Stats) { s.addErr(err) })
	}
}

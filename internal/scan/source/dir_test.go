package source

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// scanDir runs Dir and returns the fragments by path (concurrency-safe collector).
func scanDir(t *testing.T, roots []string, opts DirOptions) (map[string][]byte, Stats) {
	t.Helper()
	var mu sync.Mutex
	got := map[string][]byte{}
	st, err := Dir(context.Background(), roots, opts, func(f *Fragment) error {
		mu.Lock()
		defer mu.Unlock()
		got[f.Path] = append(got[f.Path], f.Data...)
		return nil
	})
	if err != nil {
		t.Fatalf("Dir: %v", err)
	}
	return got, st
}

func keys(m map[string][]byte) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func TestDirIgnoreAndSkips(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		".gitignore":         "*.log\n/build/\n!keep.log\n",
		"a.go":               "package a\n",
		"x.log":              "log\n",
		"keep.log":           "kept\n",
		"build/out.txt":      "out\n",
		"sub/build/in.txt":   "in\n",
		"sub/.gitignore":     "secret.txt\n",
		"sub/secret.txt":     "s\n",
		".git/config":        "[core]\n",
		"vendor/v.go":        "package v\n",
		"latin1.txt":         "caf\xe9 na\xefve\n",
		"empty.txt":          "",
		"nul-late.txt":       strings.Repeat("x", sniffLen+10) + "\x00tail\n",
		"bin.dat":            "ab\x00cd",
		"big.txt":            strings.Repeat("y", 20000),
		"deep/a/b/c/d/e.txt": "deep\n",
	})
	got, st := scanDir(t, []string{root}, DirOptions{MaxSize: 10000, Workers: 3, Skip: func(p string) bool {
		return p == "vendor"
	}})
	trimmed := got
	want := ".gitignore,a.go,deep/a/b/c/d/e.txt,keep.log,latin1.txt,nul-late.txt,sub/.gitignore,sub/build/in.txt"
	if keys(trimmed) != want {
		t.Fatalf("scanned %s\nwant    %s", keys(trimmed), want)
	}
	if !bytes.Equal(trimmed["latin1.txt"], []byte("caf\xe9 na\xefve\n")) {
		t.Fatal("non-UTF-8 bytes altered")
	}
	if st.SkippedBinary != 1 || st.SkippedLarge != 1 || st.Unreadable != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if st.Files != 9 { // the 8 above + empty.txt
		t.Fatalf("Files = %d, want 9", st.Files)
	}

	// NoIgnore scans ignored files, but never .git.
	got, _ = scanDir(t, []string{root}, DirOptions{NoIgnore: true, MaxSize: 10000})
	for _, p := range []string{"x.log", "build/out.txt", "sub/secret.txt"} {
		if _, ok := got[p]; !ok {
			t.Errorf("--no-ignore did not scan %s", p)
		}
	}
	if _, ok := got[".git/config"]; ok {
		t.Error(".git scanned")
	}
}

func TestDirRelativeRootAndFileRoot(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"d/a.txt": "a\n", "b.txt": "b\n"})
	t.Chdir(root)
	got, _ := scanDir(t, []string{"."}, DirOptions{})
	if keys(got) != "b.txt,d/a.txt" {
		t.Fatalf("paths = %s", keys(got))
	}
	got, _ = scanDir(t, []string{"d", "./b.txt"}, DirOptions{})
	if keys(got) != "a.txt,b.txt" {
		t.Fatalf("paths = %s", keys(got))
	}
	if _, err := Dir(context.Background(), []string{"missing"}, DirOptions{}, func(*Fragment) error { return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing root: %v", err)
	}
}

func TestDirUnreadable(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"ok.txt": "ok\n", "locked.txt": "x\n", "lockdir/in.txt": "y\n"})
	locked, lockdir := filepath.Join(root, "locked.txt"), filepath.Join(root, "lockdir")
	os.Chmod(locked, 0)
	os.Chmod(lockdir, 0)
	t.Cleanup(func() { os.Chmod(lockdir, 0o755) })
	if f, err := os.Open(locked); err == nil {
		f.Close()
		t.Skip("running as a user who can read mode-000 files (root)")
	}
	got, st := scanDir(t, []string{root}, DirOptions{})
	if len(got) != 1 || st.Unreadable != 2 || len(st.Errors) != 2 {
		t.Fatalf("scanned %s, stats %+v", keys(got), st)
	}
	for _, err := range st.Errors {
		if !errors.Is(err, os.ErrPermission) {
			t.Errorf("error %v is not a permission error", err)
		}
	}
}

func TestDirSymlinkLoop(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"a/f.txt": "f\n", "target.txt": "t\n"})
	if err := os.Symlink("..", filepath.Join(root, "a", "up")); err != nil {
		t.Skip("symlinks unsupported:", err)
	}
	os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "a", "self"))
	os.Symlink("target.txt", filepath.Join(root, "link.txt"))
	os.Symlink("nowhere", filepath.Join(root, "dangling"))

	got, st := scanDir(t, []string{root}, DirOptions{})
	if len(got) != 2 || st.Unreadable != 0 {
		t.Fatalf("without following: scanned %s, %+v", keys(got), st)
	}
	got, st = scanDir(t, []string{root}, DirOptions{FollowSymlinks: true})
	// link.txt is scanned; the loops back to root and a are refused; the
	// dangling link is reported.
	if len(got) != 3 || st.Unreadable != 1 {
		t.Fatalf("following: scanned %s, %+v", keys(got), st)
	}
}

func TestDirEmitErrorStops(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{}
	for i := range 50 {
		files[filepath.Join("d", strings.Repeat("x", i+1))] = "x\n"
	}
	writeFiles(t, root, files)
	stop := errors.New("stop")
	var mu sync.Mutex
	calls := 0
	_, err := Dir(context.Background(), []string{root}, DirOptions{Workers: 2}, func(*Fragment) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls > 4 {
		t.Fatalf("err = %v after %d calls", err, calls)
	}
}

func TestDirLargeFileChunked(t *testing.T) {
	root := t.TempDir()
	content := strings.Repeat("0123456789abcdef\n", (3<<20)/17)
	writeFiles(t, root, map[string]string{"big.txt": content})
	var mu sync.Mutex
	var frags []Fragment
	_, err := Dir(context.Background(), []string{root}, DirOptions{}, func(f *Fragment) error {
		mu.Lock()
		defer mu.Unlock()
		cp := *f
		cp.Data = bytes.Clone(f.Data)
		frags = append(frags, cp)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFragments(t, []byte(content), frags)
}

// TestDirIgnoreMatchesGit checks the walk against git's own answer:
// the files Dir scans are the files `git ls-files --others --exclude-standard`
// lists (everything untracked and not ignored).
func TestDirIgnoreMatchesGit(t *testing.T) {
	needGit(t)
	repo := newRepo(t)
	writeFiles(t, repo, map[string]string{
		".gitignore": "*.log\n!important.log\n/top-only.txt\nbuild/\ndocs/**/*.tmp\n**/cache/\nlib/*.o\n[Tt]emp*\n\\#literal\nout/**\n!out/keep/\n",
		"a.log":      "x\n", "important.log": "x\n", "sub/b.log": "x\n", "sub/important.log": "x\n",
		"top-only.txt": "x\n", "sub/top-only.txt": "x\n",
		"build/x": "x\n", "src/build/y": "x\n", "buildfile": "x\n",
		"docs/a.tmp": "x\n", "docs/x/y/b.tmp": "x\n", "docs/keep.md": "x\n",
		"cache/c": "x\n", "deep/er/cache/d": "x\n", "cachefile": "x\n",
		"lib/a.o": "x\n", "lib/sub/b.o": "x\n",
		"Temp1": "x\n", "temporary": "x\n", "sub/temp2": "x\n",
		"#literal": "x\n", "out/a": "x\n", "out/keep/b": "x\n",
		"nested/.gitignore": "*.txt\n!keep.txt\n/anchored.md\n",
		"nested/a.txt":      "x\n", "nested/keep.txt": "x\n", "nested/anchored.md": "x\n", "nested/deeper/anchored.md": "x\n", "nested/deeper/c.txt": "x\n",
		"plain.go":               "x\n",
		"dir with space/f.go":    "x\n",
		"nested/deeper/d.log":    "x\n",
		"nested/deeper/keep.txt": "x\n",
	})
	got, _ := scanDir(t, []string{repo}, DirOptions{})
	out := gitRun(t, repo, "ls-files", "--others", "--exclude-standard", "-z")
	var want []string
	for _, p := range strings.Split(out, "\x00") {
		if p != "" {
			want = append(want, p)
		}
	}
	sort.Strings(want)
	if keys(got) != strings.Join(want, ",") {
		t.Fatalf("Dir scanned:\n%s\ngit lists:\n%s", keys(got), strings.Join(want, ","))
	}
}

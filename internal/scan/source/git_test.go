package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// gitRun runs git in dir with a fixed identity and date.
func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Test Author", "-c", "user.email=author@example.com",
		"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "protocol.file.allow=always"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Test Author", "GIT_AUTHOR_EMAIL=author@example.com", "GIT_AUTHOR_DATE=2024-05-06T07:08:09Z",
		"GIT_COMMITTER_NAME=Test Author", "GIT_COMMITTER_EMAIL=author@example.com", "GIT_COMMITTER_DATE=2024-05-06T07:08:09Z",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
}

// gitFrags runs the Git source and returns its fragments sorted by commit
// order of appearance is not guaranteed (workers), so by path then line.
func gitFrags(t *testing.T, repo string, opts GitOptions) ([]Fragment, Stats) {
	t.Helper()
	var mu sync.Mutex
	var frags []Fragment
	st, err := Git(context.Background(), repo, opts, func(f *Fragment) error {
		mu.Lock()
		defer mu.Unlock()
		cp := *f
		cp.Data = bytes.Clone(f.Data)
		cp.LineMap = append([]int(nil), f.LineMap...)
		frags = append(frags, cp)
		return nil
	})
	if err != nil {
		t.Fatalf("Git(%+v): %v", opts, err)
	}
	sort.Slice(frags, func(i, j int) bool {
		if frags[i].Path != frags[j].Path {
			return frags[i].Path < frags[j].Path
		}
		if frags[i].Commit != frags[j].Commit {
			return frags[i].Commit < frags[j].Commit
		}
		return frags[i].StartLine < frags[j].StartLine
	})
	return frags, st
}

func newRepo(t *testing.T) string {
	t.Helper()
	needGit(t)
	dir := t.TempDir()
	gitRun(t, dir, "init", "-q")
	return dir
}

func TestGitHistory(t *testing.T) {
	repo := newRepo(t)
	writeFiles(t, repo, map[string]string{"a.txt": "one\ntwo\nthree\n", "dir/b c.txt": "spaced\n", "caf\u00e9.txt": "accent\n"})
	gitRun(t, repo, "add", ".")
	gitRun(t, repo, "commit", "-qm", "first")
	first := gitRun(t, repo, "rev-parse", "HEAD")
	writeFiles(t, repo, map[string]string{"a.txt": "one\nTWO-ADDED\ntwo\nthree\nFOUR-ADDED\n"})
	os.Remove(filepath.Join(repo, "dir", "b c.txt"))
	gitRun(t, repo, "commit", "-qam", "second: edit and delete")
	second := gitRun(t, repo, "rev-parse", "HEAD")

	frags, st := gitFrags(t, repo, GitOptions{})
	if st.Commits != 2 || st.Files != 4 {
		t.Fatalf("stats = %+v", st)
	}
	var got []string
	for _, f := range frags {
		got = append(got, fmt.Sprintf("%s@%s:%v:%q", f.Path, f.Commit[:7], f.LineMap, f.Data))
	}
	want := []string{
		fmt.Sprintf("a.txt@%s:[1 2 3]:%q", first[:7], "one\ntwo\nthree"),
		fmt.Sprintf("a.txt@%s:[2 5]:%q", second[:7], "TWO-ADDED\nFOUR-ADDED"),
		fmt.Sprintf("caf\u00e9.txt@%s:[1]:%q", first[:7], "accent"),
		fmt.Sprintf("dir/b c.txt@%s:[1]:%q", first[:7], "spaced"),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("fragments:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	f := frags[1]
	if f.Author != "Test Author" || f.Email != "author@example.com" || f.Message != "second: edit and delete" ||
		!f.Date.Equal(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)) || f.StartLine != 2 || f.StartColumn != 1 {
		t.Fatalf("metadata = %+v", f)
	}

	// --since: only the second commit.
	frags, _ = gitFrags(t, repo, GitOptions{Since: first})
	if len(frags) != 1 || frags[0].Commit != second {
		t.Fatalf("since: %d fragments", len(frags))
	}
	// --all-refs sees a commit on another branch.
	gitRun(t, repo, "checkout", "-qb", "side")
	writeFiles(t, repo, map[string]string{"side.txt": "side\n"})
	gitRun(t, repo, "add", ".")
	gitRun(t, repo, "commit", "-qm", "side")
	gitRun(t, repo, "checkout", "-q", "main")
	frags, _ = gitFrags(t, repo, GitOptions{})
	all, _ := gitFrags(t, repo, GitOptions{AllRefs: true})
	if len(all) != len(frags)+1 {
		t.Fatalf("all refs: %d fragments, HEAD: %d", len(all), len(frags))
	}
}

func TestGitEmptyRepoAndErrors(t *testing.T) {
	repo := newRepo(t)
	for _, opts := range []GitOptions{{}, {AllRefs: true}, {Staged: true}} {
		frags, st := gitFrags(t, repo, opts)
		if len(frags) != 0 || st.Files != 0 {
			t.Fatalf("%+v on an empty repo: %d fragments", opts, len(frags))
		}
	}
	// The first commit's staged files are scanned.
	writeFiles(t, repo, map[string]string{"new.txt": "staged line\n"})
	gitRun(t, repo, "add", "new.txt")
	frags, _ := gitFrags(t, repo, GitOptions{Staged: true})
	if len(frags) != 1 || string(frags[0].Data) != "staged line" || frags[0].Commit != "" {
		t.Fatalf("staged in an empty repo: %+v", frags)
	}

	noop := func(*Fragment) error { return nil }
	if _, err := Git(context.Background(), t.TempDir(), GitOptions{}, noop); !errors.Is(err, ErrNotRepository) {
		t.Fatalf("not a repo: %v", err)
	}
	if _, err := Git(context.Background(), "-rf", GitOptions{}, noop); err == nil {
		t.Fatal("repo path starting with - accepted")
	}
	if _, err := Git(context.Background(), repo, GitOptions{Since: "--output=/tmp/x"}, noop); err == nil {
		t.Fatal("--since starting with - accepted")
	}
}

func TestGitStaged(t *testing.T) {
	repo := newRepo(t)
	writeFiles(t, repo, map[string]string{"a.txt": "1\n2\n3\n", "del.txt": "gone\n"})
	gitRun(t, repo, "add", ".")
	gitRun(t, repo, "commit", "-qm", "base")
	writeFiles(t, repo, map[string]string{"a.txt": "1\n2\nstaged\n3\n", "b.txt": "new\n", "unstaged.txt": "no\n"})
	os.Remove(filepath.Join(repo, "del.txt"))
	gitRun(t, repo, "add", "a.txt", "b.txt", "del.txt")
	writeFiles(t, repo, map[string]string{"a.txt": "1\n2\nstaged\n3\nnot staged\n"})
	frags, st := gitFrags(t, repo, GitOptions{Staged: true})
	if len(frags) != 2 || st.Files != 2 {
		t.Fatalf("staged: %+v", frags)
	}
	if frags[0].Path != "a.txt" || string(frags[0].Data) != "staged" || frags[0].LineMap[0] != 3 ||
		frags[1].Path != "b.txt" || string(frags[1].Data) != "new" {
		t.Fatalf("staged fragments = %+v", frags)
	}
}

func TestGitShallowClone(t *testing.T) {
	src := newRepo(t)
	for i := range 3 {
		writeFiles(t, src, map[string]string{"f.txt": strings.Repeat("line\n", i+1)})
		gitRun(t, src, "add", ".")
		gitRun(t, src, "commit", "-qm", fmt.Sprint("c", i))
	}
	dst := filepath.Join(t.TempDir(), "shallow")
	gitRun(t, t.TempDir(), "clone", "-q", "--depth", "1", "file://"+src, dst)
	frags, st := gitFrags(t, dst, GitOptions{})
	if st.Commits != 1 || len(frags) != 1 || string(frags[0].Data) != "line\nline\nline" {
		t.Fatalf("shallow: %+v %+v", st, frags)
	}
}

// parseDiff runs the diff parser over text and returns copies of the fragments.
func parseDiff(t testing.TB, text string) ([]Fragment, Stats, error) {
	var frags []Fragment
	p := newDiffParser(func(f *Fragment) error {
		cp := *f
		cp.Data = bytes.Clone(f.Data)
		frags = append(frags, cp)
		return nil
	})
	err := p.parse(strings.NewReader(text))
	return frags, p.stats, err
}

func TestDiffParserTrickyLines(t *testing.T) {
	// An added line that looks like a header ("+++ b/x", "@@ ...", a NUL
	// commit marker) stays content because hunk counts are honoured.
	diff := "\x00abc\x00A\x00a@x\x001700000000\x00msg\n\n" +
		"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,2 +1,4 @@\n-old\n+++ b/evil\n+@@ -1 +1 @@\n context\n\\ No newline at end of file\n+last\n" +
		"diff --git a/y b/y\nBinary files a/y and b/y differ\n" +
		"diff --git a/z b/z\n--- a/z\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n"
	frags, st, err := parseDiff(t, diff)
	if err != nil || len(frags) != 1 || st.Commits != 1 || st.Files != 1 {
		t.Fatalf("frags=%+v st=%+v err=%v", frags, st, err)
	}
	f := frags[0]
	if f.Path != "x" || string(f.Data) != "++ b/evil\n@@ -1 +1 @@\nlast" || fmt.Sprint(f.LineMap) != "[1 2 4]" {
		t.Fatalf("fragment %q %v %q", f.Path, f.LineMap, f.Data)
	}
	if f.Date.Unix() != 1700000000 || f.Commit != "abc" {
		t.Fatalf("metadata %+v", f)
	}
}

func TestDiffParserLongLine(t *testing.T) {
	// A 3 MiB added line between two short ones: split with overlap, columns
	// and line numbers right, nothing held whole.
	long := bytes.Repeat([]byte("0123456789"), 3<<20/10)
	diff := "diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -0,0 +10,3 @@\n+short\n+" + string(long) + "\n+end\n"
	frags, _, err := parseDiff(t, diff)
	if err != nil {
		t.Fatal(err)
	}
	joined := []byte("short\n" + string(long) + "\nend")
	lines := []int{10, 11, 12}
	end := 0
	for i, f := range frags {
		if len(f.Data) > MaxFragmentSize {
			t.Fatalf("fragment %d too big", i)
		}
		// Locate the fragment in joined through LineMap[0] and StartColumn.
		off := offsetOf(t, joined, f.LineMap[0]-lines[0]+1, f.StartColumn)
		if !bytes.Equal(joined[off:off+len(f.Data)], f.Data) {
			t.Fatalf("fragment %d (line %d col %d) misplaced", i, f.LineMap[0], f.StartColumn)
		}
		if want := bytes.Count(f.Data, []byte{'\n'}) + 1; len(f.LineMap) != want {
			t.Fatalf("fragment %d: LineMap %v for %d lines", i, f.LineMap, want)
		}
		if i > 0 && end-off != Overlap {
			t.Fatalf("fragment %d overlap %d", i, end-off)
		}
		end = off + len(f.Data)
	}
	if end != len(joined) {
		t.Fatalf("fragments end at %d of %d", end, len(joined))
	}
}

func TestParseHunkHeader(t *testing.T) {
	cases := []struct {
		in              string
		oldN, start, nN int
		ok              bool
	}{
		{"@@ -1,2 +3,4 @@", 2, 3, 4, true},
		{"@@ -1 +3 @@ func x()", 1, 3, 1, true},
		{"@@ -0,0 +1 @@", 0, 1, 1, true},
		{"@@ -1,2 +3,4", 0, 0, 0, false},
		{"@@ -a +1 @@", 0, 0, 0, false},
		{"@@ 1 2 @@", 0, 0, 0, false},
	}
	for _, c := range cases {
		o, s, n, ok := parseHunkHeader([]byte(c.in))
		if ok != c.ok || (ok && (o != c.oldN || s != c.start || n != c.nN)) {
			t.Errorf("%q = %d %d %d %v", c.in, o, s, n, ok)
		}
	}
}

func FuzzDiffParser(f *testing.F) {
	f.Add("\x00h\x00a\x00e\x001\x00s\n\ndiff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,2 +1,3 @@\n-a\n+b\n+c\n d\n")
	f.Add("diff --git a/x b/x\n+++ \"b/q\\303\\251\"\n@@ -0,0 +1 @@\n+x")
	f.Add("@@ -1 +1 @@\n+orphan\n")
	f.Add("+++ b/x\n@@ -99999999999999999999 +1 @@\n+x\n")
	f.Add("+++ b/x\n@@ -0,0 +1,1000000 @@\n+x\n+y\n")
	f.Fuzz(func(t *testing.T, diff string) {
		frags, _, err := parseDiff(t, diff)
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range frags {
			if len(fr.Data) > MaxFragmentSize {
				t.Fatal("fragment too big")
			}
			if len(fr.LineMap) != bytes.Count(fr.Data, []byte{'\n'})+1 {
				t.Fatalf("LineMap %v for %q", fr.LineMap, fr.Data)
			}
			if fr.Path == "" {
				t.Fatal("fragment without a path")
			}
		}
	})
}

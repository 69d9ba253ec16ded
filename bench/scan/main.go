// Command scan runs keyward scan and gitleaks side by side, in one run on one
// machine, and prints the figures as markdown tables:
//
//   - quality on the labeled corpus (../shared/scan-corpus), scored by its
//     score.py: recall, precision, misses and false positives by kind;
//   - speed of a directory scan of $(go env GOROOT)/src and of a git-history
//     scan of a repository built from part of it: MB/s, CPU seconds and peak
//     RSS of each tool;
//   - start-up of the pre-commit path: `keyward scan --staged` (and gitleaks
//     git --pre-commit --staged) on a repository with one small staged file.
//
// gitleaks is installed the way its release binaries are built
// (go install -tags gore2regex, RE2 through WebAssembly) into a temporary
// GOBIN, unless -gitleaks names a binary. keyward is built from this
// checkout. Peak RSS is the tool process's own (rusage of the child); the
// git processes both tools start are not counted for either.
//
// Usage (from the repository root): go run ./bench/scan [flags]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

func main() {
	var (
		corpus     = flag.String("corpus", "", "labeled corpus (default ../shared/scan-corpus next to the repository)")
		gitleaks   = flag.String("gitleaks", "", "gitleaks binary to use instead of installing one")
		glVersion  = flag.String("gitleaks-version", "v8.30.1", "gitleaks version to install")
		runs       = flag.Int("runs", 3, "runs of each speed measurement (the best wall time is kept)")
		startRuns  = flag.Int("startup-runs", 20, "runs of the start-up measurement (the median is kept)")
		dirTarget  = flag.String("dir", "", "directory for the speed scan (default $(go env GOROOT)/src)")
		gitDirs    = flag.String("git-dirs", "net,crypto", "GOROOT/src subdirectories committed to the git-history repository")
		gitCommits = flag.Int("git-commits", 200, "commits in the git-history repository")
		keep       = flag.Bool("keep", false, "keep the temporary directory")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench/scan: ")

	root := must(goEnv("GOMOD"))
	if root == "" || root == os.DevNull {
		log.Fatal("run from inside the keyward module")
	}
	root = filepath.Dir(root)
	if *corpus == "" {
		*corpus = filepath.Join(root, "..", "shared", "scan-corpus")
	}
	goroot := must(goEnv("GOROOT"))
	if *dirTarget == "" {
		*dirTarget = filepath.Join(goroot, "src")
	}
	tmp := must(os.MkdirTemp("", "keyward-bench-scan-"))
	if *keep {
		log.Printf("temporary files in %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	b := &bench{tmp: tmp, runs: *runs}
	log.Print("building keyward")
	b.keyward = filepath.Join(tmp, "keyward")
	run(root, nil, "go", "build", "-o", b.keyward, "./cmd/keyward")
	b.gitleaks = *gitleaks
	if b.gitleaks == "" {
		log.Printf("installing gitleaks %s (-tags gore2regex)", *glVersion)
		gobin := filepath.Join(tmp, "gobin")
		run(tmp, []string{"GOBIN=" + gobin}, "go", "install", "-tags", "gore2regex", "github.com/zricethezav/gitleaks/v8@"+*glVersion)
		b.gitleaks = filepath.Join(gobin, "gitleaks")
	}

	var out strings.Builder
	fmt.Fprintf(&out, "Machine: %d CPUs, %s, %s; load average at start: %s\n\n", runtime.NumCPU(), goVersion(), gitVersion(), loadavg())
	fmt.Fprintf(&out, "Tools: keyward built from this checkout; gitleaks %s (%s)\n\n", *glVersion, b.gitleaksHow(*gitleaks))

	log.Print("quality on the labeled corpus")
	out.WriteString(b.quality(*corpus))
	log.Print("directory scan speed")
	out.WriteString(b.speedDir(*dirTarget))
	log.Print("git history scan speed")
	out.WriteString(b.speedGit(goroot, strings.Split(*gitDirs, ","), *gitCommits))
	log.Print("start-up")
	out.WriteString(b.startup(*startRuns))
	fmt.Fprintf(&out, "Load average at end: %s\n", loadavg())
	fmt.Print(out.String())
}

type bench struct {
	tmp               string
	runs              int
	keyward, gitleaks string
}

func (b *bench) gitleaksHow(given string) string {
	if given != "" {
		return "given binary " + given
	}
	return "go install -tags gore2regex"
}

// result is one measured run of a tool.
type result struct {
	wall, cpu time.Duration
	rssKiB    int64
	exit      int
}

// measure runs a command and returns its wall time, CPU time and peak RSS.
// Exit codes 0 and 1 (findings) are success.
func measure(dir string, name string, args ...string) result {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		log.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	ps := cmd.ProcessState
	r := result{wall: wall, cpu: ps.UserTime() + ps.SystemTime(), exit: ps.ExitCode()}
	r.rssKiB = maxRSSKiB(ps)
	return r
}

// best runs a measurement b.runs times: best wall, its CPU, the highest RSS.
func (b *bench) best(dir, name string, args ...string) result {
	var out result
	for i := 0; i < b.runs; i++ {
		r := measure(dir, name, args...)
		if i == 0 || r.wall < out.wall {
			rss := max(out.rssKiB, r.rssKiB)
			out = r
			out.rssKiB = rss
		} else {
			out.rssKiB = max(out.rssKiB, r.rssKiB)
		}
	}
	return out
}

// countFindings returns the number of entries in a JSON array report.
func countFindings(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(data, &arr); err != nil {
		log.Fatalf("%s: %v", path, err)
	}
	return len(arr)
}

type score struct {
	Positives      int            `json:"positives"`
	TruePositives  int            `json:"true_positives"`
	FalsePositives int            `json:"false_positives"`
	Recall         float64        `json:"recall"`
	Precision      float64        `json:"precision"`
	Missed         map[string]int `json:"missed_by_kind"`
	FPKinds        map[string]int `json:"false_positives_by_kind"`
}

func (b *bench) quality(corpus string) string {
	files := filepath.Join(corpus, "files")
	kwReport := filepath.Join(b.tmp, "quality-keyward.json")
	glReport := filepath.Join(b.tmp, "quality-gitleaks.json")
	kw := measure(b.tmp, b.keyward, "scan", files, "-o", "json", "--report", kwReport, "-q")
	gl := measure(b.tmp, b.gitleaks, "dir", files, "-f", "json", "-r", glReport, "--no-banner", "--exit-code", "0", "-l", "error")
	var s strings.Builder
	fmt.Fprintf(&s, "### Quality on %s (scored by score.py)\n\n", "scan-corpus")
	s.WriteString("| tool | recall | precision | true positives | false positives | findings | CPU s | misses by kind | false positives by kind |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range []struct {
		name, report string
		r            result
	}{{"keyward", kwReport, kw}, {"gitleaks", glReport, gl}} {
		sc := scoreReport(corpus, t.report)
		fmt.Fprintf(&s, "| %s | %.4f | %.4f | %d / %d | %d | %d | %.2f | %s | %s |\n", t.name, sc.Recall, sc.Precision,
			sc.TruePositives, sc.Positives, sc.FalsePositives, countFindings(t.report), t.r.cpu.Seconds(), kinds(sc.Missed), kinds(sc.FPKinds))
	}
	s.WriteString("\n")
	return s.String()
}

func scoreReport(corpus, report string) score {
	out, err := exec.Command("python3", filepath.Join(corpus, "score.py"), corpus, report, "--json").Output()
	if err != nil {
		log.Fatalf("score.py: %v", err)
	}
	var sc score
	if err := json.Unmarshal(out, &sc); err != nil {
		log.Fatalf("score.py output: %v", err)
	}
	return sc
}

func kinds(m map[string]int) string {
	if len(m) == 0 {
		return "–"
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return m[ks[i]] > m[ks[j]] || m[ks[i]] == m[ks[j]] && ks[i] < ks[j] })
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// treeBytes sums the sizes of the regular files under dir.
func treeBytes(dir string) (int64, int) {
	var n int64
	files := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
				files++
			}
		}
		return nil
	})
	return n, files
}

const speedHeader = "| scan | tool | wall s (best of %d) | MB/s | CPU s | MB per CPU-s | peak RSS MiB | findings |\n|---|---|---|---|---|---|---|---|\n"

func speedRow(scan, tool string, r result, mb float64, findings int) string {
	return fmt.Sprintf("| %s | %s | %.2f | %.1f | %.2f | %.1f | %.0f | %d |\n", scan, tool, r.wall.Seconds(),
		mb/r.wall.Seconds(), r.cpu.Seconds(), mb/r.cpu.Seconds(), float64(r.rssKiB)/1024, findings)
}

func (b *bench) speedDir(dir string) string {
	size, files := treeBytes(dir)
	mb := float64(size) / 1e6
	kwReport := filepath.Join(b.tmp, "dir-keyward.json")
	glReport := filepath.Join(b.tmp, "dir-gitleaks.json")
	kw := b.best(b.tmp, b.keyward, "scan", dir, "-o", "json", "--report", kwReport, "-q")
	gl := b.best(b.tmp, b.gitleaks, "dir", dir, "-f", "json", "-r", glReport, "--no-banner", "--exit-code", "0", "-l", "error")
	var s strings.Builder
	fmt.Fprintf(&s, "### Directory scan: %s (%.1f MB, %d files; MB/s = these bytes ÷ wall)\n\n", dir, mb, files)
	fmt.Fprintf(&s, speedHeader, b.runs)
	s.WriteString(speedRow("dir", "keyward `scan DIR`", kw, mb, countFindings(kwReport)))
	s.WriteString(speedRow("dir", "gitleaks `dir DIR`", gl, mb, countFindings(glReport)))
	fmt.Fprintf(&s, "\nkeyward/gitleaks: %.2f× the MB/s, %.2f× the peak RSS\n\n", gl.wall.Seconds()/kw.wall.Seconds(), float64(kw.rssKiB)/float64(gl.rssKiB))
	return s.String()
}

// gitEnv fixes identity and dates so the repository is the same every run.
var gitEnv = []string{
	"GIT_AUTHOR_NAME=Bench", "GIT_AUTHOR_EMAIL=bench@example.com", "GIT_AUTHOR_DATE=2024-01-01T00:00:00Z",
	"GIT_COMMITTER_NAME=Bench", "GIT_COMMITTER_EMAIL=bench@example.com", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z",
	"GIT_CONFIG_NOSYSTEM=1",
}

// makeHistory builds a repository whose history adds the files of dirs (under
// GOROOT/src) in `commits` commits.
func (b *bench) makeHistory(goroot string, dirs []string, commits int) string {
	repo := filepath.Join(b.tmp, "history")
	run(b.tmp, gitEnv, "git", "init", "-q", repo)
	var files []string
	for _, d := range dirs {
		src := filepath.Join(goroot, "src", d)
		filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(filepath.Join(goroot, "src"), p)
			files = append(files, rel)
			return nil
		})
	}
	slices.Sort(files)
	per := max(1, (len(files)+commits-1)/commits)
	for i := 0; i < len(files); i += per {
		batch := files[i:min(i+per, len(files))]
		for _, rel := range batch {
			dst := filepath.Join(repo, rel)
			os.MkdirAll(filepath.Dir(dst), 0o755)
			data, err := os.ReadFile(filepath.Join(goroot, "src", rel))
			if err != nil {
				log.Fatal(err)
			}
			os.WriteFile(dst, data, 0o644)
		}
		cmd := exec.Command("git", "-c", "core.autocrlf=false", "add", "-f", "--pathspec-from-file=-")
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), gitEnv...)
		cmd.Stdin = strings.NewReader(strings.Join(batch, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("git add: %v\n%s", err, out)
		}
		run(repo, gitEnv, "git", "-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", fmt.Sprintf("add batch %d", i/per+1))
	}
	return repo
}

func (b *bench) speedGit(goroot string, dirs []string, commits int) string {
	repo := b.makeHistory(goroot, dirs, commits)
	// The bytes both tools read: git log -p -U0 of every ref.
	cmd := exec.Command("git", "-C", repo, "log", "-p", "-U0", "--full-history", "--all", "--no-color")
	patch, err := cmd.Output()
	if err != nil {
		log.Fatal(err)
	}
	mb := float64(len(patch)) / 1e6
	ncommits := strings.TrimSpace(string(must(exec.Command("git", "-C", repo, "rev-list", "--count", "--all").Output())))
	kwReport := filepath.Join(b.tmp, "git-keyward.json")
	glReport := filepath.Join(b.tmp, "git-gitleaks.json")
	kw := b.best(b.tmp, b.keyward, "scan", "--git", "--all-refs", repo, "-o", "json", "--report", kwReport, "-q")
	gl := b.best(b.tmp, b.gitleaks, "git", repo, "-f", "json", "-r", glReport, "--no-banner", "--exit-code", "0", "-l", "error")
	var s strings.Builder
	fmt.Fprintf(&s, "### Git history scan: GOROOT/src/{%s} committed in %s commits (git log -p -U0 --all = %.1f MB; MB/s = these bytes ÷ wall)\n\n",
		strings.Join(dirs, ","), ncommits, mb)
	fmt.Fprintf(&s, speedHeader, b.runs)
	s.WriteString(speedRow("git", "keyward `scan --git --all-refs`", kw, mb, countFindings(kwReport)))
	s.WriteString(speedRow("git", "gitleaks `git`", gl, mb, countFindings(glReport)))
	fmt.Fprintf(&s, "\nkeyward/gitleaks: %.2f× the MB/s, %.2f× the peak RSS\n\n", gl.wall.Seconds()/kw.wall.Seconds(), float64(kw.rssKiB)/float64(gl.rssKiB))
	return s.String()
}

func (b *bench) startup(runs int) string {
	repo := filepath.Join(b.tmp, "staged")
	run(b.tmp, gitEnv, "git", "init", "-q", repo)
	os.WriteFile(filepath.Join(repo, "hello.go"), []byte("package hello\n\nconst greeting = \"hello, world\"\n"), 0o644)
	run(repo, gitEnv, "git", "add", "hello.go")
	type tool struct {
		name string
		bin  string
		args []string
	}
	tools := []tool{
		{"keyward `scan --staged`", b.keyward, []string{"scan", "--staged", "-q"}},
		{"gitleaks `git --pre-commit --staged`", b.gitleaks, []string{"git", "--pre-commit", "--staged", "--no-banner", "--exit-code", "0", "-l", "error", "."}},
	}
	var s strings.Builder
	fmt.Fprintf(&s, "### Start-up: one small staged file (%d runs each)\n\n", runs)
	s.WriteString("| tool | median wall ms | min wall ms | median CPU ms | peak RSS MiB |\n|---|---|---|---|---|\n")
	for _, t := range tools {
		var walls, cpus []time.Duration
		var rss int64
		measure(repo, t.bin, t.args...) // warm the page cache
		for range runs {
			r := measure(repo, t.bin, t.args...)
			walls = append(walls, r.wall)
			cpus = append(cpus, r.cpu)
			rss = max(rss, r.rssKiB)
		}
		slices.Sort(walls)
		slices.Sort(cpus)
		fmt.Fprintf(&s, "| %s | %.1f | %.1f | %.1f | %.0f |\n", t.name, ms(walls[len(walls)/2]), ms(walls[0]), ms(cpus[len(cpus)/2]), float64(rss)/1024)
	}
	s.WriteString("\n")
	return s.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func run(dir string, env []string, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func goEnv(key string) (string, error) {
	out, err := exec.Command("go", "env", key).Output()
	return strings.TrimSpace(string(out)), err
}

func goVersion() string {
	out, _ := exec.Command("go", "version").Output()
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
}

func gitVersion() string {
	out, _ := exec.Command("git", "version").Output()
	return strings.TrimSpace(string(out))
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

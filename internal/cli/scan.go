package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/client"
	"github.com/keyward/keyward/internal/scan"
	"github.com/keyward/keyward/internal/scan/report"
	"github.com/keyward/keyward/internal/scan/source"
)

// Exit codes of keyward scan.
const (
	scanExitClean    = 0
	scanExitFindings = 1
	scanExitError    = 2
)

// Files keyward scan looks for at the scan root.
const (
	scanConfigFile = ".keyward-scan.toml"
	scanIgnoreFile = ".keywardignore"
)

type scanFlags struct {
	git, allRefs, staged        bool
	since                       string
	noIgnore, followSymlinks    bool
	maxSize                     string
	config                      string
	baseline, writeBaseline     string
	format, report              string
	showSecrets, noColor, quiet bool
	revoke                      bool
	workers                     int
	maxPerFile                  int
}

// defaultMaxPerFile is --max-findings-per-file's default: far more than a
// real file holds, far fewer than an adversarial one (a 200 MB line made
// of secrets held 6.3 million, and reporting them took 6.6 GB).
const defaultMaxPerFile = 1000

func newScanCmd(env *Env) *cobra.Command {
	var fl scanFlags
	cmd := &cobra.Command{
		Use:   "scan [PATH...]",
		Short: "Find secrets in files, git history, staged changes or standard input",
		Long: `Scan finds credentials (API keys, tokens, private keys, passwords in
connection strings, keyward's own kw*_ credentials) in code, history and logs.
It works offline and never sends a secret anywhere.

Sources:
  keyward scan [PATH...]       files and directories (default "."), honouring
                               .gitignore unless --no-ignore; binary files and
                               files over --max-size are skipped and counted
  keyward scan --git [REPO]    every line added by every commit of HEAD's history
                               (--all-refs: every branch and tag; --since REV:
                               only commits after REV); findings name the commit
  keyward scan --staged        the lines the next commit adds (the pre-commit path)
  keyward scan -               standard input (logs, build output, kubectl -o yaml)

Exit codes: 0 no findings, 1 findings, 2 error (bad flag, unreadable config,
invalid rule). Unreadable files are reported as warnings and do not change
the exit code.

Allowlisting, from the narrowest to the widest:
  - a "keyward:allow" comment on the line of a false positive;
  - .keywardignore at the scan root: path globs, one a line (testdata/**, *.min.js);
  - a rules file (--config FILE, else .keyward-scan.toml at the scan root) with
    [allowlist] regexes, stopwords and paths, [disable] ids, or rules of its own;
  - a baseline: --write-baseline FILE records today's findings; --baseline FILE
    then reports only findings not in it (keyed by rule, file and secret, so
    moving a line does not re-open it).

Secrets are shown as their first characters and "…" unless --show-secrets.
See docs/scanning.md for the rules file format and CI recipes.`,
		Example: `  keyward scan                                  # the working directory
  keyward scan --git --since origin/main        # commits not yet on main
  keyward scan --staged                         # what is about to be committed
  kubectl get secret -o yaml | keyward scan -   # a pipe
  keyward scan --format sarif --report keyward.sarif   # for GitHub code scanning
  keyward scan --write-baseline .keyward-baseline.json # accept what exists today
  keyward scan --baseline .keyward-baseline.json       # fail only on new findings`,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := runScan(cmd.Context(), env, &fl, args)
			if err != nil {
				var ue usageError
				if errors.As(err, &ue) {
					return err
				}
				return &ExitError{Code: scanExitError, Err: err}
			}
			if code != scanExitClean {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&fl.git, "git", false, "scan git history (the lines each commit added) instead of files")
	f.StringVar(&fl.since, "since", "", "with --git: only commits after `REV` (REV..HEAD)")
	f.BoolVar(&fl.allRefs, "all-refs", false, "with --git: every branch and tag, not only HEAD")
	f.BoolVar(&fl.staged, "staged", false, "scan the staged changes (git diff --cached), for a pre-commit hook")
	f.BoolVar(&fl.noIgnore, "no-ignore", false, "also scan files that .gitignore excludes")
	f.BoolVar(&fl.followSymlinks, "follow-symlinks", false, "follow symbolic links (loops are detected)")
	f.StringVar(&fl.maxSize, "max-size", "10MiB", "skip files larger than `SIZE` (bytes, or with KB, MB, KiB, MiB...)")
	f.StringVar(&fl.config, "config", "", "rules `FILE` (default: "+scanConfigFile+" at the scan root, if present)")
	f.StringVar(&fl.baseline, "baseline", "", "report only findings not in this baseline `FILE`")
	f.StringVar(&fl.writeBaseline, "write-baseline", "", "write all findings to `FILE` as a baseline (and exit 0)")
	f.StringVarP(&fl.format, "format", "o", "text", "output format: text, json, sarif or csv")
	f.StringVar(&fl.format, "output", "text", "alias of --format")
	f.MarkHidden("output")
	f.StringVar(&fl.report, "report", "", "write the report in --format to `FILE` (standard output then gets the text form)")
	f.BoolVar(&fl.showSecrets, "show-secrets", false, "print full secrets instead of their first characters")
	f.BoolVar(&fl.revoke, "revoke", false, "report the keyward tokens and API keys found to the server at KEYWARD_ADDR, which revokes them (POST /v1/leaks; no token needed)")
	f.IntVar(&fl.workers, "workers", 0, "files scanned at once (default: number of CPUs)")
	f.IntVar(&fl.maxPerFile, "max-findings-per-file", defaultMaxPerFile, "stop reporting a file (a commit's file with --git) after `N` findings; 0: no limit")
	f.BoolVar(&fl.noColor, "no-color", false, "no colours in text output (also $NO_COLOR)")
	f.BoolVarP(&fl.quiet, "quiet", "q", false, "no summary or progress on standard error")
	return cmd
}

// scanPlan is what the flags and arguments ask for, validated.
type scanPlan struct {
	mode    string // "dir", "git", "staged", "stdin"
	roots   []string
	root    string // where the rules file and .keywardignore are looked for
	maxSize int64
	workers int
}

func planScan(fl *scanFlags, args []string) (scanPlan, error) {
	p := scanPlan{mode: "dir", roots: args, root: "."}
	if !slices.Contains(report.Formats, fl.format) {
		return p, Usagef("--format %q: want one of %s", fl.format, strings.Join(report.Formats, ", "))
	}
	n, err := parseSize(fl.maxSize)
	if err != nil {
		return p, Usagef("--max-size: %v", err)
	}
	p.maxSize = n
	if fl.workers < 0 {
		return p, Usagef("--workers %d: want a positive number", fl.workers)
	}
	if fl.maxPerFile < 0 {
		return p, Usagef("--max-findings-per-file %d: want 0 (no limit) or more", fl.maxPerFile)
	}
	p.workers = fl.workers
	if p.workers == 0 {
		p.workers = runtime.GOMAXPROCS(0)
	}
	if fl.since != "" || fl.allRefs {
		fl.git = true
	}
	switch {
	case fl.git && fl.staged:
		return p, Usagef("--staged and --git are different sources: give one")
	case slices.Contains(args, "-"):
		if len(args) > 1 || fl.git || fl.staged {
			return p, Usagef(`"-" (standard input) cannot be combined with other paths, --git or --staged`)
		}
		p.mode = "stdin"
	case fl.git || fl.staged:
		p.mode = "git"
		if fl.staged {
			p.mode = "staged"
		}
		if len(args) > 1 {
			return p, Usagef("--git and --staged scan one repository; got %d paths", len(args))
		}
		if len(args) == 1 {
			p.root = args[0]
		}
	default:
		if len(args) == 0 {
			p.roots = []string{"."}
		}
		if len(p.roots) == 1 {
			if fi, err := os.Stat(p.roots[0]); err == nil && fi.IsDir() {
				p.root = p.roots[0]
			}
		}
	}
	return p, nil
}

// parseSize reads "10MiB", "500KB", "1.5MB" or a plain number of bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
		"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
	}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if mult == 0 || err != nil || v <= 0 || v*mult > 1<<50 {
		return 0, fmt.Errorf("%q: want a positive size such as 10MiB, 500KB or 1048576", s)
	}
	return int64(v * mult), nil
}

// loadScanConfig reads the rules file and .keywardignore for root.
func loadScanConfig(fl *scanFlags, root string) (*scan.Config, error) {
	var cfg *scan.Config
	file := fl.config
	if file == "" {
		if p := filepath.Join(root, scanConfigFile); fileExists(p) {
			file = p
		}
	}
	if file != "" {
		c, err := scan.LoadConfig(file)
		if err != nil {
			return nil, fmt.Errorf("rules file: %w", err)
		}
		cfg = c
	}
	if p := filepath.Join(root, scanIgnoreFile); fileExists(p) {
		globs, err := scan.LoadIgnoreFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", scanIgnoreFile, err)
		}
		if cfg == nil {
			cfg = &scan.Config{}
		}
		cfg.AllowPaths = append(cfg.AllowPaths, globs...)
	}
	return cfg, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// runScan does the work and returns the exit code.
func runScan(ctx context.Context, env *Env, fl *scanFlags, args []string) (int, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	start := time.Now()
	plan, err := planScan(fl, args)
	if err != nil {
		return scanExitError, err
	}
	cfg, err := loadScanConfig(fl, plan.root)
	if err != nil {
		return scanExitError, err
	}
	// The engine compiles its rules while the source starts (git runs, the
	// walk begins): on the pre-commit path the two take similar time.
	eng := buildEngine(cfg)
	var base scan.Baseline
	if fl.baseline != "" {
		if base, err = scan.LoadBaseline(fl.baseline); err != nil {
			return scanExitError, err
		}
	}

	col := &collector{maxPerFile: fl.maxPerFile}
	prog := startProgress(env, fl.quiet, func(elapsed time.Duration) string {
		return fmt.Sprintf("scanning… %.1f MB, %d findings, %s", float64(col.bytes.Load())/1e6, col.count.Load(), elapsed.Round(time.Second))
	})
	st, err := runSource(ctx, env, plan, fl, eng, col)
	prog.stop()
	if _, engErr := eng.get(); engErr != nil {
		return scanExitError, fmt.Errorf("rules: %w", engErr)
	}
	if err != nil {
		return scanExitError, err
	}
	if !fl.quiet {
		for _, e := range st.Errors {
			fmt.Fprintf(env.Stderr, "warning: %v\n", e)
		}
		if extra := st.Unreadable - int64(len(st.Errors)); extra > 0 {
			fmt.Fprintf(env.Stderr, "warning: %d more unreadable files or directories\n", extra)
		}
	}

	all := dedupe(col.findings)
	sortFindings(all)
	if fl.writeBaseline != "" {
		if err := scan.WriteBaseline(fl.writeBaseline, all); err != nil {
			return scanExitError, err
		}
	}
	findings := all
	if fl.baseline != "" {
		findings = slices.DeleteFunc(slices.Clone(all), base.Contains)
	}

	if fl.revoke {
		if err := reportLeaks(ctx, env, findings); err != nil {
			return scanExitError, err
		}
	}

	opts := report.Options{ShowSecrets: fl.showSecrets, Version: version()}
	if fl.report != "" {
		if err := writeReportFile(fl.report, fl.format, findings, opts); err != nil {
			return scanExitError, err
		}
		opts.Color = useColor(env, fl)
		if err := report.Write(env.Stdout, "text", findings, opts); err != nil {
			return scanExitError, err
		}
	} else {
		opts.Color = fl.format == "text" && useColor(env, fl)
		if err := report.Write(env.Stdout, fl.format, findings, opts); err != nil {
			return scanExitError, err
		}
	}
	if !fl.quiet {
		line := report.Summary(st, len(findings), time.Since(start))
		if n := len(all) - len(findings); n > 0 {
			line += fmt.Sprintf("; %d in the baseline", n)
		}
		fmt.Fprintln(env.Stderr, line)
		if fl.writeBaseline != "" {
			fmt.Fprintf(env.Stderr, "wrote %d findings to the baseline %s\n", len(all), fl.writeBaseline)
		}
		col.warnCapped(env.Stderr)
		if plan.mode == "staged" && len(findings) > 0 && fl.writeBaseline == "" {
			// The pre-commit hook's path: the commit is about to be
			// refused, so say what to do about it.
			fmt.Fprintln(env.Stderr, stagedAdvice)
		}
	}
	if len(findings) > 0 && fl.writeBaseline == "" {
		return scanExitFindings, nil
	}
	return scanExitClean, nil
}

// stagedAdvice follows findings in staged changes (the pre-commit hook).
const stagedAdvice = `The commit is refused: the staged changes hold a secret. Remove it (and
rotate it if it was ever pushed or shared). For a false positive, add a
"keyward:allow" comment on its line, or its path to .keywardignore.
git commit --no-verify skips this check once.`

// runSource feeds the chosen source through the engine into col.
func runSource(ctx context.Context, env *Env, plan scanPlan, fl *scanFlags, eng *lazyEngine, col *collector) (source.Stats, error) {
	switch plan.mode {
	case "stdin":
		return source.Reader(ctx, "-", env.Stdin, col.emit(eng, ""))
	case "git", "staged":
		return source.Git(ctx, plan.root, source.GitOptions{
			Since: fl.since, AllRefs: fl.allRefs, Staged: plan.mode == "staged", Workers: plan.workers,
		}, col.emit(eng, ""))
	}
	var total source.Stats
	for _, root := range plan.roots {
		prefix := ""
		if fi, err := os.Stat(root); err == nil && fi.IsDir() {
			if r := filepath.ToSlash(filepath.Clean(root)); r != "." {
				prefix = r
			}
		}
		st, err := source.Dir(ctx, []string{root}, source.DirOptions{
			NoIgnore: fl.noIgnore, MaxSize: plan.maxSize, Workers: plan.workers,
			FollowSymlinks: fl.followSymlinks, Skip: eng.allowPath,
		}, col.emit(eng, prefix))
		total.Files += st.Files
		total.Bytes += st.Bytes
		total.SkippedBinary += st.SkippedBinary
		total.SkippedLarge += st.SkippedLarge
		total.Unreadable += st.Unreadable
		total.Errors = append(total.Errors, st.Errors...)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return total, Usagef("%v", err)
			}
			return total, err
		}
	}
	return total, nil
}

// lazyEngine is an engine being built in the background.
type lazyEngine struct {
	done chan struct{}
	eng  *scan.Engine
	err  error
}

func buildEngine(cfg *scan.Config) *lazyEngine {
	l := &lazyEngine{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.eng, l.err = scan.NewEngine(cfg)
	}()
	return l
}

// get waits for the engine.
func (l *lazyEngine) get() (*scan.Engine, error) {
	<-l.done
	return l.eng, l.err
}

func (l *lazyEngine) allowPath(p string) bool {
	eng, err := l.get()
	return err == nil && eng.AllowPath(p)
}

// collector gathers findings from concurrent workers, at most maxPerFile
// (when > 0) per file and commit.
type collector struct {
	maxPerFile int
	mu         sync.Mutex
	findings   []scan.Finding
	perFile    map[fileKey]int
	capped     map[fileKey]bool // files whose findings reached maxPerFile
	bytes      atomic.Int64
	count      atomic.Int64
}

type fileKey struct{ file, commit string }

// emit returns the source callback: scan the fragment, keep its findings,
// with prefix (the directory root) joined to their paths. Once a file has
// maxPerFile findings, its further fragments are not scanned.
func (c *collector) emit(l *lazyEngine, prefix string) func(*source.Fragment) error {
	return func(f *source.Fragment) error {
		eng, err := l.get()
		if err != nil {
			return err
		}
		c.bytes.Add(int64(len(f.Data)))
		key := fileKey{f.Path, f.Commit}
		if prefix != "" {
			key.file = path.Join(prefix, f.Path)
		}
		if c.maxPerFile > 0 {
			c.mu.Lock()
			full := c.capped[key]
			c.mu.Unlock()
			if full {
				return nil
			}
		}
		found := eng.Scan(f)
		if len(found) == 0 {
			return nil
		}
		if prefix != "" {
			for i := range found {
				found[i].File = path.Join(prefix, found[i].File)
			}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.maxPerFile > 0 {
			if c.perFile == nil {
				c.perFile, c.capped = map[fileKey]int{}, map[fileKey]bool{}
			}
			room := c.maxPerFile - c.perFile[key]
			if len(found) >= room {
				found = found[:max(room, 0)]
				c.capped[key] = true
			}
			c.perFile[key] += len(found)
		}
		c.count.Add(int64(len(found)))
		c.findings = append(c.findings, found...)
		return nil
	}
}

// warnCapped says which files stopped being reported at maxPerFile
// findings (the first ten of them).
func (c *collector) warnCapped(w io.Writer) {
	keys := slices.Collect(maps.Keys(c.capped))
	if len(keys) == 0 {
		return
	}
	slices.SortFunc(keys, func(a, b fileKey) int { return cmp.Or(cmp.Compare(a.file, b.file), cmp.Compare(a.commit, b.commit)) })
	for i, k := range keys {
		if i == 10 {
			fmt.Fprintf(w, "warning: %d more files reached the limit\n", len(keys)-10)
			break
		}
		where := k.file
		if k.commit != "" {
			where += " in commit " + k.commit
		}
		fmt.Fprintf(w, "warning: %s: stopped after %d findings (--max-findings-per-file); the rest of it was not reported\n", where, c.maxPerFile)
	}
}

// dedupe drops repeats of one finding. Overlapping fragments of a large
// file can report a secret twice, or once whole and once cut at a fragment's
// edge: of the findings of one rule in one file (and commit) whose spans
// overlap, the first and longest is kept.
func dedupe(fs []scan.Finding) []scan.Finding {
	slices.SortFunc(fs, func(a, b scan.Finding) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Commit, b.Commit),
			cmp.Compare(a.Rule, b.Rule),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			cmp.Compare(b.EndLine, a.EndLine),
			cmp.Compare(b.EndColumn, a.EndColumn),
		)
	})
	out := fs[:0]
	for _, f := range fs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.File == f.File && last.Commit == f.Commit && last.Rule == f.Rule &&
				(f.Line < last.EndLine || f.Line == last.EndLine && f.Column <= last.EndColumn) {
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

// sortFindings orders findings by file, position, rule, then history.
func sortFindings(fs []scan.Finding) {
	slices.SortFunc(fs, func(a, b scan.Finding) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Rule, b.Rule),
			b.Date.Compare(a.Date), // newest commit first
			cmp.Compare(a.Commit, b.Commit),
		)
	})
}

func writeReportFile(name, format string, findings []scan.Finding, opts report.Options) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := report.Write(f, format, findings, opts); err != nil {
		f.Close()
		return fmt.Errorf("report %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report %s: %w", name, err)
	}
	return nil
}

func useColor(env *Env, fl *scanFlags) bool {
	return !fl.noColor && env.Getenv("NO_COLOR") == "" && isTerminal(env.Stdout)
}

// version is the module version the binary was built from, for SARIF.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return ""
}

// progress writes a status line to a terminal's standard error while work
// that has run for over a second goes on (a scan, a backup's download).
type progress struct {
	done chan struct{}
	wg   sync.WaitGroup
}

// startProgress shows line(elapsed) every 250 ms from the first second on,
// unless quiet or standard error is not a terminal; stop clears it.
func startProgress(env *Env, quiet bool, line func(elapsed time.Duration) string) *progress {
	p := &progress{done: make(chan struct{})}
	if quiet || !isTerminal(env.Stderr) {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		start := time.Now()
		select {
		case <-p.done:
			return
		case <-time.After(time.Second):
		}
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			fmt.Fprint(env.Stderr, "\r\x1b[K"+line(time.Since(start)))
			select {
			case <-p.done:
				fmt.Fprint(env.Stderr, "\r\x1b[K")
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}

// reportLeaks sends the keyward tokens and API keys among findings to the
// server at KEYWARD_ADDR, which revokes them.
func reportLeaks(ctx context.Context, env *Env, findings []scan.Finding) error {
	var leaks []client.Leak
	seen := map[string]bool{}
	for _, f := range findings {
		if f.Rule != "keyward-token" || seen[f.Secret] || !(strings.HasPrefix(f.Secret, "kwt_") || strings.HasPrefix(f.Secret, "kwk_")) {
			continue
		}
		seen[f.Secret] = true
		where := fmt.Sprintf("%s:%d", f.File, f.Line)
		if f.Commit != "" {
			where = f.Commit + ":" + where
		}
		leaks = append(leaks, client.Leak{Credential: f.Secret, Where: where})
	}
	if len(leaks) == 0 {
		fmt.Fprintln(env.Stderr, "--revoke: no keyward token or API key among the findings")
		return nil
	}
	addr := env.Getenv("KEYWARD_ADDR")
	if addr == "" {
		return Usagef("--revoke reports to the keyward server at KEYWARD_ADDR, which is not set")
	}
	c, err := client.New(client.Config{Address: addr, UserAgent: "keyward-cli"})
	if err != nil {
		return err
	}
	found, err := c.ReportLeaks(ctx, leaks)
	if err != nil {
		return fmt.Errorf("--revoke: reporting to %s: %w", addr, err)
	}
	fmt.Fprintf(env.Stderr, "--revoke: reported %d keyward credentials to %s; %d were its own and are revoked\n", len(leaks), addr, found)
	return nil
}

package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/scan"
	"github.com/keyward/keyward/internal/scan/source"
)

// runCLI runs keyward with args as a user would type them.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	code = Run(env, args)
	return code, out.String(), errb.String()
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// jsonFindings parses a JSON report.
func jsonFindings(t *testing.T, s string) []scan.Finding {
	t.Helper()
	var fs []scan.Finding
	if err := json.Unmarshal([]byte(s), &fs); err != nil {
		t.Fatalf("not a JSON report: %v\n%s", err, s)
	}
	return fs
}

func TestScanDirExitCodes(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "clean/a.go", "package a\n")
	tok := credential.New(credential.AccessToken)
	write(t, dir, "dirty/config.env", "# settings\nKEYWARD_TOKEN="+tok+"\n")

	code, out, errOut := runCLI(t, "", "scan", filepath.Join(dir, "clean"))
	if code != 0 || out != "" || !strings.Contains(errOut, "scanned 1 file") {
		t.Fatalf("clean: code %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "", "scan", filepath.Join(dir, "dirty"))
	if code != 1 {
		t.Fatalf("dirty: code %d, stderr %q", code, errOut)
	}
	wantPath := filepath.ToSlash(filepath.Join(dir, "dirty")) + "/config.env"
	if !strings.Contains(out, wantPath) || !strings.Contains(out, "2:15") || !strings.Contains(out, "keyward-token") {
		t.Fatalf("text report:\n%s", out)
	}
	if strings.Contains(out+errOut, tok) {
		t.Fatal("the secret was printed without --show-secrets")
	}
	if !strings.Contains(errOut, "1 finding") {
		t.Fatalf("summary: %q", errOut)
	}
	code, out, _ = runCLI(t, "", "scan", "--show-secrets", "-q", filepath.Join(dir, "dirty"))
	if code != 1 || !strings.Contains(out, tok) {
		t.Fatalf("--show-secrets: code %d\n%s", code, out)
	}

	// -o json: fields and the secret left out.
	code, out, _ = runCLI(t, "", "scan", "-o", "json", "-q", filepath.Join(dir, "dirty"))
	fs := jsonFindings(t, out)
	if code != 1 || len(fs) != 1 || fs[0].Rule != "keyward-token" || fs[0].File != wantPath || fs[0].Line != 2 ||
		fs[0].Secret != "" || fs[0].Fingerprint == "" || fs[0].Redacted == "" {
		t.Fatalf("json: code %d %+v", code, fs)
	}
}

func TestScanUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := write(t, dir, "bad.toml", "[[rules]]\nid = \"acme\"\nregex = '''(unclosed'''\nkeywords = [\"acme\"]\n")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"scan", "--format", "xml", dir}, "--format"},
		{[]string{"scan", "--max-size", "lots", dir}, "--max-size"},
		{[]string{"scan", "--config", bad, dir}, "acme"},
		{[]string{"scan", "--config", filepath.Join(dir, "none.toml"), dir}, "none.toml"},
		{[]string{"scan", "--git", "--staged"}, "--staged"},
		{[]string{"scan", "-", dir}, "standard input"},
		{[]string{"scan", filepath.Join(dir, "missing")}, "missing"},
		{[]string{"scan", "--baseline", filepath.Join(dir, "nope.json"), dir}, "nope.json"},
		{[]string{"scan", "--no-such-flag"}, "unknown flag"},
		{[]string{"scan", "--git", dir}, "not a git repository"},
		{[]string{"scan", "--max-findings-per-file", "-1", dir}, "--max-findings-per-file"},
	}
	for _, c := range cases {
		code, _, errOut := runCLI(t, "", c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: code %d, stderr %q (want 2 and %q)", c.args, code, errOut, c.want)
		}
	}
	// The invalid-regex error names the rule and its line.
	_, _, errOut := runCLI(t, "", "scan", "--config", bad, dir)
	if !strings.Contains(errOut, "line 3") {
		t.Errorf("invalid regex error does not name the line: %q", errOut)
	}
}

func TestScanStdin(t *testing.T) {
	tok := credential.New(credential.APIKey)
	code, out, _ := runCLI(t, "build log\nusing key "+tok+" for upload\n", "scan", "-", "-o", "json", "-q")
	fs := jsonFindings(t, out)
	if code != 1 || len(fs) != 1 || fs[0].File != "-" || fs[0].Line != 2 || fs[0].Column != 11 {
		t.Fatalf("stdin: code %d %+v", code, fs)
	}
	if code, _, _ := runCLI(t, "nothing to see\n", "scan", "-", "-q"); code != 0 {
		t.Fatalf("clean stdin: code %d", code)
	}
}

func TestScanConfigIgnoreAndAllow(t *testing.T) {
	dir := t.TempDir()
	tok := func() string { return credential.New(credential.AccessToken) }
	write(t, dir, "a.env", "T="+tok()+"\n")
	write(t, dir, "b.env", "T="+tok()+" # keyward:allow\n")
	write(t, dir, "fixtures/c.env", "T="+tok()+"\n")
	write(t, dir, "ignored/d.env", "T="+tok()+"\n")
	write(t, dir, ".gitignore", "ignored/\n")
	write(t, dir, ".keywardignore", "# test data\nfixtures/**\n")
	code, out, errOut := runCLI(t, "", "scan", "-o", "json", dir)
	fs := jsonFindings(t, out)
	if code != 1 || len(fs) != 1 || !strings.HasSuffix(fs[0].File, "/a.env") {
		t.Fatalf("code %d %+v\n%s", code, fs, errOut)
	}
	// --no-ignore brings back the .gitignore'd file, not the .keywardignore'd one.
	_, out, _ = runCLI(t, "", "scan", "-o", "json", "--no-ignore", dir)
	if fs := jsonFindings(t, out); len(fs) != 2 {
		t.Fatalf("--no-ignore: %+v", fs)
	}
	// .keyward-scan.toml at the root disables the rule.
	write(t, dir, ".keyward-scan.toml", "[disable]\nids = [\"keyward-token\"]\n")
	if code, out, _ := runCLI(t, "", "scan", "-q", dir); code != 0 {
		t.Fatalf("rule disabled by .keyward-scan.toml still reported: %d\n%s", code, out)
	}
}

func TestScanBaseline(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(t.TempDir(), "baseline.json")
	old := credential.New(credential.AccessToken)
	write(t, dir, "a.env", "T="+old+"\n")
	code, _, errOut := runCLI(t, "", "scan", "--write-baseline", base, dir)
	if code != 0 || !strings.Contains(errOut, "wrote 1 findings to the baseline") {
		t.Fatalf("write-baseline: %d %q", code, errOut)
	}
	if b, _ := os.ReadFile(base); strings.Contains(string(b), old) {
		t.Fatal("baseline holds the secret")
	}
	// Lines added above the baselined secret do not re-open it.
	write(t, dir, "a.env", "# moved\n\nT="+old+"\n")
	if code, out, errOut := runCLI(t, "", "scan", "--baseline", base, dir); code != 0 || out != "" || !strings.Contains(errOut, "1 in the baseline") {
		t.Fatalf("baselined finding fails: %d\n%s\n%s", code, out, errOut)
	}
	// A new secret fails, and only it is reported.
	write(t, dir, "b.env", "T="+credential.New(credential.AccessToken)+"\n")
	code, out, _ := runCLI(t, "", "scan", "--baseline", base, "-o", "json", "-q", dir)
	if fs := jsonFindings(t, out); code != 1 || len(fs) != 1 || !strings.HasSuffix(fs[0].File, "b.env") {
		t.Fatalf("new finding: %d %+v", code, fs)
	}
}

func TestScanReportFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.env", "T="+credential.New(credential.AccessToken)+"\n")
	rep := filepath.Join(t.TempDir(), "out.sarif")
	code, out, _ := runCLI(t, "", "scan", "--format", "sarif", "--report", rep, "-q", dir)
	if code != 1 || !strings.Contains(out, "keyward-token") || strings.Contains(out, `"version"`) {
		t.Fatalf("stdout should carry the text report: %d\n%s", code, out)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Results []json.RawMessage `json:"results"`
		} `json:"runs"`
	}
	b, err := os.ReadFile(rep)
	if err != nil || json.Unmarshal(b, &log) != nil || log.Version != "2.1.0" || len(log.Runs[0].Results) != 1 {
		t.Fatalf("SARIF file: %v\n%s", err, b)
	}
	_, out, _ = runCLI(t, "", "scan", "--format", "csv", "-q", dir)
	if !strings.HasPrefix(out, "rule,description,severity,file,line") || strings.Count(out, "\n") != 2 {
		t.Fatalf("csv:\n%s", out)
	}
}

func TestScanLongLineFoundOnce(t *testing.T) {
	// An 8 MB single line with a secret straddling the first fragment
	// boundary, and another inside the overlap of the second: each reported
	// once.
	dir := t.TempDir()
	line := bytes.Repeat([]byte("a "), 4<<20)
	tok1, tok2 := credential.New(credential.AccessToken), credential.New(credential.RefreshToken)
	copy(line[source.MaxFragmentSize-20:], " "+tok1+" ")
	second := 2*(source.MaxFragmentSize-source.Overlap) - 100 // inside the overlap of fragments 2 and 3
	copy(line[second:], " "+tok2+" ")
	write(t, dir, "min.js", string(line)+"\n")
	code, out, errOut := runCLI(t, "", "scan", "-o", "json", dir)
	fs := jsonFindings(t, out)
	if code != 1 || len(fs) != 2 {
		t.Fatalf("code %d, %d findings: %+v\n%s", code, len(fs), fs, errOut)
	}
	if fs[0].Line != 1 || fs[0].Column != source.MaxFragmentSize-18 || fs[1].Column != second+2 {
		t.Fatalf("positions: %+v", fs)
	}
}

func TestScanGitAndStaged(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=T", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+repo)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	if code, _, errOut := runCLI(t, "", "scan", "--git", "-q", repo); code != 0 {
		t.Fatalf("empty repo: %d %s", code, errOut)
	}
	tok := credential.New(credential.AccessToken)
	write(t, repo, "app.env", "A=1\nT="+tok+"\n")
	git("add", ".")
	git("commit", "-qm", "add token")
	write(t, repo, "app.env", "A=1\n")
	git("commit", "-qam", "remove token")

	// The working tree is clean, history is not.
	if code, _, _ := runCLI(t, "", "scan", "-q", repo); code != 0 {
		t.Fatalf("tree scan: %d", code)
	}
	code, out, errOut := runCLI(t, "", "scan", "--git", "-o", "json", repo)
	fs := jsonFindings(t, out)
	if code != 1 || len(fs) != 1 || fs[0].File != "app.env" || fs[0].Line != 2 || len(fs[0].Commit) != 40 || fs[0].Author != "T" {
		t.Fatalf("history: %d %+v", code, fs)
	}
	if !strings.Contains(errOut, "2 commits") {
		t.Fatalf("summary: %q", errOut)
	}
	// Staged.
	if code, _, _ := runCLI(t, "", "scan", "--staged", "-q", repo); code != 0 {
		t.Fatalf("nothing staged: %d", code)
	}
	write(t, repo, "new.env", "K="+credential.New(credential.APIKey)+"\n")
	git("add", "new.env")
	code, out, _ = runCLI(t, "", "scan", "--staged", "-q", "-o", "json", repo)
	if fs := jsonFindings(t, out); code != 1 || len(fs) != 1 || fs[0].File != "new.env" || fs[0].Commit != "" {
		t.Fatalf("staged: %d %+v", code, fs)
	}
	// Without -q the refusal says what to do; a history scan does not.
	if code, _, errOut := runCLI(t, "", "scan", "--staged", repo); code != 1 || !strings.Contains(errOut, "The commit is refused") || !strings.Contains(errOut, "keyward:allow") {
		t.Fatalf("staged advice: %d %q", code, errOut)
	}
	if _, _, errOut := runCLI(t, "", "scan", "--git", repo); strings.Contains(errOut, "The commit is refused") {
		t.Fatalf("advice on a history scan: %q", errOut)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"10MiB": 10 << 20, "500KB": 500_000, "1048576": 1 << 20, "1.5 MB": 1_500_000, "2k": 2000, "1GiB": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "-1", "0", "10XB", "1e3", "999999999TB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestDedupe(t *testing.T) {
	fs := []scan.Finding{
		{Rule: "r", File: "f", Line: 1, Column: 10, EndLine: 1, EndColumn: 49},
		{Rule: "r", File: "f", Line: 1, Column: 20, EndLine: 1, EndColumn: 49}, // cut at a fragment start
		{Rule: "r", File: "f", Line: 1, Column: 10, EndLine: 1, EndColumn: 30}, // cut at a fragment end
		{Rule: "r", File: "f", Line: 1, Column: 10, EndLine: 1, EndColumn: 49}, // exact repeat
		{Rule: "r", File: "f", Line: 1, Column: 60, EndLine: 1, EndColumn: 80},
		{Rule: "other", File: "f", Line: 1, Column: 10, EndLine: 1, EndColumn: 49},
		{Rule: "r", File: "f", Commit: "c", Line: 1, Column: 10, EndLine: 1, EndColumn: 49},
	}
	got := dedupe(fs)
	if len(got) != 4 {
		t.Fatalf("dedupe kept %d: %+v", len(got), got)
	}
	for _, f := range got {
		if f.Rule == "r" && f.Commit == "" && f.Column == 10 && f.EndColumn != 49 {
			t.Fatalf("kept a cut finding: %+v", f)
		}
	}
}

func TestScanUnreadableKeepsExitCode(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.env", "T="+credential.New(credential.AccessToken)+"\n")
	locked := write(t, dir, "locked.env", "x\n")
	lockedDir := filepath.Join(dir, "lockeddir")
	write(t, dir, "lockeddir/b.env", "y\n")
	os.Chmod(locked, 0)
	os.Chmod(lockedDir, 0)
	t.Cleanup(func() { os.Chmod(lockedDir, 0o755) })
	if f, err := os.Open(locked); err == nil {
		f.Close()
		t.Skip("running as a user who can read mode-000 files (root)")
	}
	code, out, errOut := runCLI(t, "", "scan", dir)
	if code != 1 || !strings.Contains(out, "a.env") {
		t.Fatalf("code %d\n%s", code, out)
	}
	if !strings.Contains(errOut, "warning: open "+locked) || !strings.Contains(errOut, "lockeddir") || !strings.Contains(errOut, "2 unreadable") {
		t.Fatalf("stderr: %q", errOut)
	}
}

// A file full of secrets is reported up to --max-findings-per-file, with a
// warning naming it; other files are reported whole, and the exit code
// still says there were findings.
func TestScanMaxFindingsPerFile(t *testing.T) {
	dir := t.TempDir()
	var many strings.Builder
	for range 40 {
		many.WriteString("TOKEN=" + credential.New(credential.AccessToken) + "\n")
	}
	write(t, dir, "dump.log", many.String())
	write(t, dir, "app.env", "A="+credential.New(credential.APIKey)+"\nB="+credential.New(credential.APIKey)+"\n")

	code, out, errOut := runCLI(t, "", "scan", "--max-findings-per-file", "5", "-o", "json", dir)
	fs := jsonFindings(t, out)
	per := map[string]int{}
	for _, f := range fs {
		per[filepath.Base(f.File)]++
	}
	if code != 1 || per["dump.log"] != 5 || per["app.env"] != 2 {
		t.Fatalf("code %d, findings per file %v", code, per)
	}
	if !strings.Contains(errOut, "dump.log: stopped after 5 findings") || strings.Contains(errOut, "app.env: stopped") {
		t.Fatalf("stderr does not name exactly the capped file: %q", errOut)
	}
	// 0: no limit.
	_, out, errOut = runCLI(t, "", "scan", "--max-findings-per-file", "0", "-o", "json", "-q", dir)
	if n := len(jsonFindings(t, out)); n != 42 || errOut != "" {
		t.Fatalf("unlimited: %d findings, stderr %q", n, errOut)
	}
	// Standard input counts as one file too.
	_, out, _ = runCLI(t, many.String(), "scan", "-", "--max-findings-per-file", "3", "-o", "json", "-q")
	if n := len(jsonFindings(t, out)); n != 3 {
		t.Fatalf("stdin: %d findings, want 3", n)
	}
}

// scan --revoke reports the keyward tokens and API keys it found to the
// server, with where each was found, without a token, once each; other
// findings stay local.
func TestScanRevokeReportsKeywardCredentials(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	tok, key := credential.New(credential.AccessToken), credential.New(credential.APIKey)
	write(t, dir, "a.env", "KEYWARD_TOKEN="+tok+"\nPARTNER_KEY="+key+"\nAGAIN="+tok+"\n")
	write(t, dir, "b.txt", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n") // keyward:allow (test fixture)
	var got []map[string]string
	var auth []string
	h.fake.mux.HandleFunc("POST /v1/leaks", func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		json.NewDecoder(r.Body).Decode(&got)
		out := make([]map[string]string, len(got))
		for i := range got {
			out[i] = map[string]string{"label": "true_positive"}
		}
		out[len(out)-1]["label"] = "false_positive"
		json.NewEncoder(w).Encode(out)
	})
	r := h.run("", "scan", "--revoke", dir)
	if r.code != 1 {
		t.Fatalf("exit %d (want 1: findings)\n%s", r.code, r.stderr)
	}
	if len(got) != 2 || got[0]["token"] != tok || got[1]["token"] != key || !strings.HasSuffix(got[0]["url"], "a.env:1") || got[0]["source"] != "keyward scan" {
		t.Fatalf("reported %v", got)
	}
	if len(auth) != 1 || auth[0] != "" {
		t.Errorf("Authorization sent: %q", auth)
	}
	if !strings.Contains(r.stderr, "reported 2 keyward credentials") || !strings.Contains(r.stderr, "1 were its own") {
		t.Errorf("stderr %q", r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, tok) {
		t.Error("the token was printed")
	}
	h.vars["KEYWARD_ADDR"] = ""
	if r := h.run("", "scan", "--revoke", dir); r.code != 2 || !strings.Contains(r.stderr, "KEYWARD_ADDR") {
		t.Errorf("--revoke without a server: exit %d %q", r.code, r.stderr)
	}
}

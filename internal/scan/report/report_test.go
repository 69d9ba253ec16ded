package report

import (
	"bytes"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/scan"
	"github.com/keyward/keyward/internal/scan/source"
)

// sample returns findings holding freshly generated secrets.
func sample(t *testing.T) []scan.Finding {
	t.Helper()
	tok := credential.New(credential.AccessToken)
	other := "sk_" + rand.Text()
	return []scan.Finding{
		{Rule: "keyward-token", Description: "keyward access token", Severity: scan.Critical, File: "config/app.env",
			Line: 3, Column: 14, EndLine: 3, EndColumn: 13 + len(tok), Fingerprint: "fp1", Redacted: scan.Redact(tok), Secret: tok},
		{Rule: "generic-secret", Description: "=cmd|' /C calc'!A0", Severity: scan.Medium, File: "config/app.env",
			Line: 9, Column: 1, EndLine: 9, EndColumn: len(other), Fingerprint: "fp2", Secret: other},
		{Rule: "keyward-token", Description: "keyward access token", Severity: scan.Critical, File: "src/a b.go",
			Line: 1, Column: 5, EndLine: 1, EndColumn: 50, Fingerprint: "fp3", Redacted: "kwt_…", Secret: tok,
			Commit: "0123456789abcdef0123456789abcdef01234567", Author: "Ann", Email: "ann@example.com",
			Date: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)},
	}
}

func write(t *testing.T, format string, fs []scan.Finding, opts Options) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, format, fs, opts); err != nil {
		t.Fatalf("Write %s: %v", format, err)
	}
	return b.String()
}

func TestNoSecretUnlessAsked(t *testing.T) {
	fs := sample(t)
	for _, format := range Formats {
		out := write(t, format, fs, Options{Color: true})
		for _, f := range fs {
			if strings.Contains(out, f.Secret) {
				t.Errorf("%s output contains a full secret", format)
			}
		}
	}
	for _, format := range []string{"text", "json", "csv"} {
		out := write(t, format, fs, Options{ShowSecrets: true})
		if !strings.Contains(out, fs[0].Secret) {
			t.Errorf("%s output lacks the secret with ShowSecrets", format)
		}
	}
	if out := write(t, "sarif", fs, Options{ShowSecrets: true}); strings.Contains(out, fs[0].Secret) {
		t.Error("SARIF contains a secret even with ShowSecrets")
	}
	if err := Write(&bytes.Buffer{}, "xml", fs, Options{}); !errors.Is(err, ErrFormat) {
		t.Fatalf("unknown format: %v", err)
	}
}

func TestText(t *testing.T) {
	fs := sample(t)
	out := write(t, "text", fs, Options{})
	if strings.Contains(out, "\x1b[") {
		t.Fatal("colour without Color")
	}
	if strings.Count(out, "config/app.env\n") != 1 || !strings.Contains(out, "src/a b.go\n") {
		t.Fatalf("not grouped by file:\n%s", out)
	}
	for _, want := range []string{"3:14", "keyward-token", "critical", fs[0].Redacted, "commit 0123456789ab by Ann <ann@example.com> on 2024-05-06", "3 findings in 2 files"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, scan.Redact(fs[1].Secret)) {
		t.Error("missing Redacted not derived from the secret")
	}
	colored := write(t, "text", fs, Options{Color: true})
	if !strings.Contains(colored, ansiRed+"critical"+ansiReset) {
		t.Error("no colour with Color")
	}
	if write(t, "text", nil, Options{}) != "" {
		t.Error("text output for no findings")
	}
	evil := []scan.Finding{{Rule: "r", File: "x\x1b]0;pwned\x07.txt", Line: 1, Column: 1, Redacted: "ab…"}}
	if strings.ContainsAny(write(t, "text", evil, Options{}), "\x1b\x07") {
		t.Error("control characters from a file name reach the terminal")
	}
}

func TestJSON(t *testing.T) {
	fs := sample(t)
	var back []map[string]any
	if err := json.Unmarshal([]byte(write(t, "json", fs, Options{})), &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 {
		t.Fatalf("%d findings", len(back))
	}
	for _, k := range []string{"rule", "file", "line", "column", "fingerprint", "severity", "redacted"} {
		if _, ok := back[0][k]; !ok {
			t.Errorf("JSON finding lacks %q", k)
		}
	}
	if _, ok := back[0]["secret"]; ok {
		t.Error("JSON has a secret field without ShowSecrets")
	}
	if back[2]["commit"] != fs[2].Commit || back[2]["date"] != "2024-05-06T07:08:09Z" {
		t.Errorf("git fields: %v", back[2])
	}
	if _, ok := back[0]["commit"]; ok {
		t.Error("empty commit not omitted")
	}
	if got := strings.TrimSpace(write(t, "json", nil, Options{})); got != "[]" {
		t.Errorf("no findings = %q, want []", got)
	}
}

func TestSARIF(t *testing.T) {
	fs := sample(t)
	var log struct {
		Version string `json:"version"`
		Schema  string `json:"$schema"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID               string `json:"id"`
						ShortDescription struct {
							Text string `json:"text"`
						} `json:"shortDescription"`
						Properties map[string]any `json:"properties"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Message   struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine, StartColumn, EndLine, EndColumn int
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
				PartialFingerprints map[string]string `json:"partialFingerprints"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(write(t, "sarif", fs, Options{Version: "1.2.3"})), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || !strings.Contains(log.Schema, "sarif-2.1.0") || len(log.Runs) != 1 {
		t.Fatalf("log header: %+v", log)
	}
	run := log.Runs[0]
	if run.Tool.Driver.Name != "keyward" || len(run.Tool.Driver.Rules) != 2 {
		t.Fatalf("driver: %+v", run.Tool.Driver)
	}
	for _, r := range run.Tool.Driver.Rules {
		if r.ID == "" || r.ShortDescription.Text == "" || r.Properties["security-severity"] == nil {
			t.Errorf("rule %+v lacks fields", r)
		}
	}
	if len(run.Results) != 3 {
		t.Fatalf("%d results", len(run.Results))
	}
	r0 := run.Results[0]
	reg := r0.Locations[0].PhysicalLocation.Region
	if r0.RuleID != "keyward-token" || run.Tool.Driver.Rules[r0.RuleIndex].ID != r0.RuleID || r0.Level != "error" ||
		reg.StartLine != 3 || reg.StartColumn != 14 || reg.EndLine != 3 || reg.EndColumn != fs[0].EndColumn+1 ||
		r0.PartialFingerprints["keyward/v1"] != "fp1" || r0.Message.Text == "" {
		t.Fatalf("result 0: %+v", r0)
	}
	if run.Results[1].Level != "warning" {
		t.Errorf("medium level = %q", run.Results[1].Level)
	}
	r2 := run.Results[2]
	if r2.Locations[0].PhysicalLocation.ArtifactLocation.URI != "src/a%20b.go" || r2.PartialFingerprints["commitSha"] != fs[2].Commit {
		t.Fatalf("result 2: %+v", r2)
	}
	// No findings: results must still be an array.
	if !strings.Contains(write(t, "sarif", nil, Options{}), `"results": []`) {
		t.Error("empty SARIF lacks results: []")
	}
}

func TestCSV(t *testing.T) {
	fs := sample(t)
	recs, err := csv.NewReader(strings.NewReader(write(t, "csv", fs, Options{}))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || strings.Join(recs[0], ",") != strings.Join(csvHeader, ",") {
		t.Fatalf("records: %v", recs)
	}
	if recs[1][0] != "keyward-token" || recs[1][3] != "config/app.env" || recs[1][4] != "3" || recs[1][len(csvHeader)-1] != "" {
		t.Fatalf("row 1: %v", recs[1])
	}
	if !strings.HasPrefix(recs[2][1], "'=") {
		t.Errorf("formula not defused: %q", recs[2][1])
	}
	if recs[3][11] != "2024-05-06T07:08:09Z" {
		t.Errorf("date %q", recs[3][11])
	}
}

func TestSummary(t *testing.T) {
	st := source.Stats{Files: 123, Bytes: 4_500_000, SkippedBinary: 3, SkippedLarge: 1}
	got := Summary(st, 2, 120*time.Millisecond)
	want := "scanned 123 files (4.5 MB) in 120ms; 2 findings; skipped 3 binary, 1 large, 0 unreadable"
	if got != want {
		t.Fatalf("Summary = %q\nwant      %q", got, want)
	}
	got = Summary(source.Stats{Commits: 4, Files: 1, Bytes: 10}, 1, 1500*time.Microsecond)
	if got != "scanned 4 commits, 1 file change (10 bytes) in 2ms; 1 finding; skipped 0 binary, 0 large, 0 unreadable" {
		t.Fatalf("Summary = %q", got)
	}
}

// Package report writes scan findings for people (text grouped by file) and
// for machines (JSON, SARIF 2.1.0 for code-scanning uploads, CSV).
//
// Output rule: a secret is shown only as its redacted form (first characters
// and "…") unless Options.ShowSecrets is set; the JSON, SARIF and CSV forms
// leave the secret out entirely unless asked. Messages never embed a secret.
package report

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/scan"
	"github.com/keyward/keyward/internal/scan/source"
)

// Formats lists the accepted format names.
var Formats = []string{"text", "json", "sarif", "csv"}

// ErrFormat is returned for an unknown format name.
var ErrFormat = errors.New("unknown report format")

// Options tune Write.
type Options struct {
	// Color adds ANSI colours to the text format (set it when writing to a
	// terminal).
	Color bool
	// ShowSecrets includes the full secrets. Off by default.
	ShowSecrets bool
	// Version is the scanner's version, recorded in SARIF.
	Version string
}

// Write writes findings to w in format (text, json, sarif or csv).
func Write(w io.Writer, format string, findings []scan.Finding, opts Options) error {
	switch format {
	case "text", "":
		return writeText(w, findings, opts)
	case "json":
		return writeJSON(w, findings, opts)
	case "sarif":
		return writeSARIF(w, findings, opts)
	case "csv":
		return writeCSV(w, findings, opts)
	}
	return fmt.Errorf("%w %q: want one of %s", ErrFormat, format, strings.Join(Formats, ", "))
}

// redacted returns what the text forms show of f's secret.
func redacted(f *scan.Finding, opts Options) string {
	if opts.ShowSecrets && f.Secret != "" {
		return f.Secret
	}
	if f.Redacted != "" {
		return f.Redacted
	}
	return scan.Redact(f.Secret)
}

// public returns f with the secret removed unless opts.ShowSecrets, and the
// redacted form filled in.
func public(f scan.Finding, opts Options) scan.Finding {
	if f.Redacted == "" {
		f.Redacted = scan.Redact(f.Secret)
	}
	if !opts.ShowSecrets {
		f.Secret = ""
	}
	return f
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

func severityColor(s scan.Severity) string {
	switch s {
	case scan.Critical, scan.High:
		return ansiRed
	case scan.Medium:
		return ansiYellow
	}
	return ansiCyan
}

// writeText groups findings by file, in the order given (sorted by the
// caller):
//
//	config/app.env
//	  3:14  github-pat  critical  ghp_…  GitHub personal access token
//	        commit 1a2b3c4 by Ann <ann@example.com> on 2024-05-06
func writeText(w io.Writer, findings []scan.Finding, opts Options) error {
	paint := func(code, s string) string {
		if !opts.Color {
			return s
		}
		return code + s + ansiReset
	}
	var b strings.Builder
	groups := 0
	for i := range findings {
		f := &findings[i]
		if i == 0 || f.File != findings[i-1].File {
			if groups > 0 {
				b.WriteByte('\n')
			}
			groups++
			b.WriteString(paint(ansiBold, sanitize(f.File)))
			b.WriteByte('\n')
		}
		pos := fmt.Sprintf("%d:%d", f.Line, f.Column)
		fmt.Fprintf(&b, "  %-9s %s  %s  %s  %s\n", pos, paint(ansiBold, f.Rule),
			paint(severityColor(f.Severity), string(f.Severity)), sanitize(redacted(f, opts)), sanitize(f.Description))
		if f.Commit != "" {
			c := f.Commit[:min(len(f.Commit), 12)]
			line := "commit " + c
			if f.Author != "" {
				line += " by " + f.Author
				if f.Email != "" {
					line += " <" + f.Email + ">"
				}
			}
			if !f.Date.IsZero() {
				line += " on " + f.Date.UTC().Format(time.DateOnly)
			}
			fmt.Fprintf(&b, "            %s\n", paint(ansiDim, sanitize(line)))
		}
	}
	if len(findings) > 0 {
		files := groups
		fmt.Fprintf(&b, "\n%s in %s\n", plural(len(findings), "finding"), plural(files, "file"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// sanitize replaces control characters (a file name or secret could hold an
// escape sequence that rewrites the terminal) with '?'.
func sanitize(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return '?'
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

func writeJSON(w io.Writer, findings []scan.Finding, opts Options) error {
	out := make([]scan.Finding, len(findings))
	for i, f := range findings {
		out[i] = public(f, opts)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

var csvHeader = []string{"rule", "description", "severity", "file", "line", "column", "end_line", "end_column",
	"commit", "author", "email", "date", "fingerprint", "redacted", "entropy", "secret"}

func writeCSV(w io.Writer, findings []scan.Finding, opts Options) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, f := range findings {
		f = public(f, opts)
		date := ""
		if !f.Date.IsZero() {
			date = f.Date.UTC().Format(time.RFC3339)
		}
		rec := []string{f.Rule, f.Description, string(f.Severity), f.File, strconv.Itoa(f.Line), strconv.Itoa(f.Column),
			strconv.Itoa(f.EndLine), strconv.Itoa(f.EndColumn), f.Commit, f.Author, f.Email, date, f.Fingerprint,
			f.Redacted, strconv.FormatFloat(f.Entropy, 'f', 3, 64), f.Secret}
		for i := range rec {
			rec[i] = csvSafe(rec[i])
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe defuses formula injection: a spreadsheet would evaluate a cell
// that starts with = + - @ (an author name or file path is attacker-chosen).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) && !isNumber(s) {
		return "'" + s
	}
	return s
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// Summary is the one-line account of a scan written to standard error:
//
//	scanned 123 files (4.5 MB) in 120ms; 2 findings; skipped 3 binary, 1 large, 0 unreadable
func Summary(st source.Stats, findings int, elapsed time.Duration) string {
	what := plural(int(st.Files), "file")
	if st.Commits > 0 {
		what = plural(int(st.Commits), "commit") + ", " + plural(int(st.Files), "file change")
	}
	return fmt.Sprintf("scanned %s (%s) in %s; %s; skipped %d binary, %d large, %d unreadable",
		what, humanBytes(st.Bytes), roundDuration(elapsed), plural(findings, "finding"),
		st.SkippedBinary, st.SkippedLarge, st.Unreadable)
}

func humanBytes(n int64) string {
	switch {
	case n < 1000:
		return plural(int(n), "byte")
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// ruleIDs returns the distinct rule ids of findings, sorted.
func ruleIDs(findings []scan.Finding) []string {
	var ids []string
	for _, f := range findings {
		ids = append(ids, f.Rule)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

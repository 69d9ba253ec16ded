package report

import (
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/scan"
)

// The subset of SARIF 2.1.0 that GitHub code scanning reads. Field names and
// required members follow the OASIS schema (sarif-schema-2.1.0.json) and
// GitHub's "SARIF support for code scanning" page.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           sarifRuleProps `json:"properties"`
	Help                 *sarifText     `json:"help,omitempty"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifRuleProps struct {
	Tags             []string `json:"tags"`
	SecuritySeverity string   `json:"security-severity"`
	Precision        string   `json:"precision"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Properties          map[string]string `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           sarifRegion   `json:"region"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn"`
	EndLine     int `json:"endLine"`
	EndColumn   int `json:"endColumn"` // exclusive in SARIF
}

// sarifLevel maps a severity to a SARIF level.
func sarifLevel(s scan.Severity) string {
	switch s {
	case scan.Critical, scan.High:
		return "error"
	case scan.Medium:
		return "warning"
	}
	return "note"
}

// securitySeverity is GitHub's 0–10 score: ≥9 critical, ≥7 high, ≥4 medium.
func securitySeverity(s scan.Severity) string {
	switch s {
	case scan.Critical:
		return "9.5"
	case scan.High:
		return "8.0"
	case scan.Medium:
		return "5.5"
	}
	return "3.0"
}

// sarifURI turns a finding's path into a relative URI reference (or a file
// URI for an absolute path), percent-encoding what needs it.
func sarifURI(p string) string {
	p = strings.TrimPrefix(p, "./")
	if strings.HasPrefix(p, "/") {
		return (&url.URL{Scheme: "file", Path: p}).String()
	}
	return (&url.URL{Path: p}).String()
}

// writeSARIF writes a SARIF 2.1.0 log with one run. Secrets never appear in
// it, not even with ShowSecrets: SARIF files are uploaded to third parties.
func writeSARIF(w io.Writer, findings []scan.Finding, opts Options) error {
	ids := ruleIDs(findings)
	index := make(map[string]int, len(ids))
	rules := make([]sarifRule, len(ids))
	for i, id := range ids {
		index[id] = i
		rules[i] = sarifRule{ID: id, Name: id}
	}
	for _, f := range findings {
		r := &rules[index[f.Rule]]
		if r.ShortDescription.Text != "" {
			continue
		}
		desc := f.Description
		if desc == "" {
			desc = f.Rule
		}
		r.ShortDescription = sarifText{Text: desc}
		r.FullDescription = sarifText{Text: desc + " (rule " + f.Rule + ")"}
		r.DefaultConfiguration = sarifConfig{Level: sarifLevel(f.Severity)}
		r.Properties = sarifRuleProps{Tags: []string{"security", "secret"}, SecuritySeverity: securitySeverity(f.Severity), Precision: "high"}
		r.Help = &sarifText{Text: "Revoke the credential at its issuer, remove it from the code (and history), and load it at run time instead (for example with keyward run). A false positive can be allowed with a keyward:allow comment, .keywardignore or a baseline."}
	}
	results := make([]sarifResult, 0, len(findings))
	for _, f := range findings {
		f = public(f, Options{})
		endCol := f.EndColumn + 1
		endLine := f.EndLine
		if endLine < f.Line {
			endLine = f.Line
		}
		if endLine == f.Line && endCol <= f.Column {
			endCol = f.Column + 1
		}
		res := sarifResult{
			RuleID:    f.Rule,
			RuleIndex: index[f.Rule],
			Level:     sarifLevel(f.Severity),
			Message:   sarifText{Text: f.Description + " found: " + f.Redacted},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{
				ArtifactLocation: sarifArtifact{URI: sarifURI(f.File)},
				Region:           sarifRegion{StartLine: max(f.Line, 1), StartColumn: max(f.Column, 1), EndLine: max(endLine, 1), EndColumn: endCol},
			}}},
			PartialFingerprints: map[string]string{"keyward/v1": f.Fingerprint},
		}
		if f.Commit != "" {
			res.PartialFingerprints["commitSha"] = f.Commit
			res.Properties = map[string]string{"commit": f.Commit, "author": f.Author, "email": f.Email}
			if !f.Date.IsZero() {
				res.Properties["date"] = f.Date.UTC().Format(time.RFC3339)
			}
		}
		results = append(results, res)
	}
	log := sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs: []sarifRun{{
			Tool:    sarifTool{Driver: sarifDriver{Name: "keyward", InformationURI: "https://github.com/keyward/keyward", Version: opts.Version, Rules: rules}},
			Results: results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

package scan

import "time"

// Severity of a rule.
type Severity string

const (
	Critical Severity = "critical"
	High     Severity = "high"
	Medium   Severity = "medium"
	Low      Severity = "low"
)

// Finding is one secret found in one place. Secret holds the full value and is
// never printed unless the user asked for it (--show-secrets); reports show
// Redacted.
type Finding struct {
	Rule        string    `json:"rule"`
	Description string    `json:"description"`
	Severity    Severity  `json:"severity"`
	File        string    `json:"file"`
	Line        int       `json:"line"`
	EndLine     int       `json:"end_line"`
	Column      int       `json:"column"`
	EndColumn   int       `json:"end_column"`
	Commit      string    `json:"commit,omitempty"`
	Author      string    `json:"author,omitempty"`
	Email       string    `json:"email,omitempty"`
	Date        time.Time `json:"date,omitzero"`
	Fingerprint string    `json:"fingerprint"`
	Redacted    string    `json:"redacted"`
	Entropy     float64   `json:"entropy,omitempty"`
	Secret      string    `json:"secret,omitempty"` // emptied before reporting unless --show-secrets
}

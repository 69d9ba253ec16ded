package scan

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrBaseline is wrapped by LoadBaseline's errors for a file that is not a
// JSON findings report.
var ErrBaseline = errors.New("invalid baseline")

// Baseline is a set of accepted findings, keyed by fingerprint, so that a CI
// gate fails only on new secrets. A fingerprint ignores line and column (see
// Fingerprint): moving a baselined secret does not re-open it; changing it,
// its file or its rule does.
type Baseline struct {
	fps map[string]struct{}
}

// Len returns the number of fingerprints in b.
func (b Baseline) Len() int { return len(b.fps) }

// Contains reports whether f is in the baseline.
func (b Baseline) Contains(f Finding) bool {
	_, ok := b.fps[f.Fingerprint]
	return ok && f.Fingerprint != ""
}

// LoadBaseline reads a baseline: a JSON report written by
// `keyward scan --format json` or WriteBaseline (an array of findings; only
// their fingerprints matter).
func LoadBaseline(path string) (Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Baseline{}, fmt.Errorf("baseline: %w", err)
	}
	var findings []struct {
		Fingerprint string `json:"fingerprint"`
	}
	if err := json.Unmarshal(data, &findings); err != nil {
		return Baseline{}, fmt.Errorf("%w %s: want a JSON array of findings: %v", ErrBaseline, path, err)
	}
	b := Baseline{fps: make(map[string]struct{}, len(findings))}
	for i, f := range findings {
		if f.Fingerprint == "" {
			return Baseline{}, fmt.Errorf("%w %s: finding %d has no fingerprint", ErrBaseline, path, i+1)
		}
		b.fps[f.Fingerprint] = struct{}{}
	}
	return b, nil
}

// WriteBaseline writes findings to path as a JSON baseline, without their
// secrets, atomically (a temporary file renamed over path).
func WriteBaseline(path string, findings []Finding) error {
	out := make([]Finding, len(findings))
	for i, f := range findings {
		if f.Redacted == "" {
			f.Redacted = Redact(f.Secret)
		}
		f.Secret = ""
		out[i] = f
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyward-baseline-*")
	if err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write baseline: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write baseline: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	return nil
}

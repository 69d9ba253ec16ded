package scan

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/credential"
)

func TestBaselineRoundTrip(t *testing.T) {
	dir := t.TempDir()
	old := credential.New(credential.APIKey)
	accepted := Finding{Rule: "keyward-api-key", File: "a.env", Line: 3, Secret: old, Fingerprint: Fingerprint("keyward-api-key", "a.env", "", old)}
	path := filepath.Join(dir, "baseline.json")
	if err := WriteBaseline(path, []Finding{accepted}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), old) {
		t.Fatal("baseline file holds the secret")
	}
	b, err := LoadBaseline(path)
	if err != nil || b.Len() != 1 {
		t.Fatalf("LoadBaseline: %v, %d entries", err, b.Len())
	}
	// The same secret moved to another line is still accepted.
	moved := accepted
	moved.Line = 40
	if !b.Contains(moved) {
		t.Fatal("baselined finding not contained")
	}
	fresh := credential.New(credential.APIKey)
	newF := Finding{Rule: "keyward-api-key", File: "a.env", Line: 4, Secret: fresh, Fingerprint: Fingerprint("keyward-api-key", "a.env", "", fresh)}
	if b.Contains(newF) {
		t.Fatal("new finding contained")
	}
	if b.Contains(Finding{}) {
		t.Fatal("empty fingerprint contained")
	}
	if (Baseline{}).Contains(newF) {
		t.Fatal("zero baseline contains something")
	}
}

func TestLoadBaselineErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadBaseline(filepath.Join(dir, "none.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	for name, content := range map[string]string{
		"obj.json":   `{"findings": 1}`,
		"nofp.json":  `[{"rule": "x"}]`,
		"trunc.json": `[{"fingerprint": "a"`,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		if _, err := LoadBaseline(p); !errors.Is(err, ErrBaseline) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", name, err)
		}
	}
	p := filepath.Join(dir, "empty.json")
	os.WriteFile(p, []byte("[]"), 0o644)
	if b, err := LoadBaseline(p); err != nil || b.Len() != 0 {
		t.Fatalf("empty baseline: %v", err)
	}
}

func FuzzLoadBaseline(f *testing.F) {
	f.Add(`[{"fingerprint":"abc"}]`)
	f.Add(`[]`)
	f.Add(`{"x":1}`)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content string) {
		p := filepath.Join(dir, "b.json")
		os.WriteFile(p, []byte(content), 0o644)
		b, err := LoadBaseline(p)
		if err == nil && b.Contains(Finding{}) {
			t.Fatal("empty fingerprint contained")
		}
	})
}

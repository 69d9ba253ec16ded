package deptest

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeT records failures instead of failing.
type fakeT struct {
	testing.TB
	errors []string
}

func (f *fakeT) Helper()                           {}
func (f *fakeT) Errorf(format string, args ...any) { f.errors = append(f.errors, format) }
func (f *fakeT) Fatalf(format string, args ...any) { f.errors = append(f.errors, "fatal: "+format) }
func (f *fakeT) Fatal(args ...any)                 { f.errors = append(f.errors, "fatal") }

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.go"), []byte("package a\nimport (\n\t\"net/http\"\n\t\"github.com/keyward/keyward/internal/storage\"\n\t\"github.com/keyward/keyward/internal/server\"\n\t\"golang.org/x/crypto/hkdf\"\n)\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "a_test.go"), []byte("package a\nimport \"github.com/keyward/keyward/internal/cli\"\n"), 0o600)
	for _, tc := range []struct {
		name   string
		refuse func(string) error
		want   int
	}{
		{"only storage", OnlyKeyward("internal/storage"), 1}, // server; the test file's cli is not read
		{"storage and server", OnlyKeyward("internal/storage", "internal/server"), 0},
		{"stdlib only", StdlibOnly, 3},
	} {
		f := &fakeT{}
		Check(f, dir, tc.refuse)
		if len(f.errors) != tc.want {
			t.Errorf("%s: %d failures %q, want %d", tc.name, len(f.errors), f.errors, tc.want)
		}
	}
	f := &fakeT{}
	Check(f, t.TempDir(), StdlibOnly)
	if len(f.errors) != 1 {
		t.Errorf("an empty directory: %q, want one fatal", f.errors)
	}
}

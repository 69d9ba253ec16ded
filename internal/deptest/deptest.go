// Package deptest checks what a package imports, for the tests that keep
// keyward's arrows pointing down (DESIGN.md: one concept per package, and
// lower packages never import higher ones). Only tests import it.
package deptest

import (
	"fmt"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Module is keyward's module path, with its slash.
const Module = "github.com/keyward/keyward/"

// Check fails t for every import of the non-test Go files in dir that
// refuse rejects, naming the file and refuse's reason.
func Check(t testing.TB, dir string, refuse func(path string) error) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no Go files (%v)", dir, err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if err := refuse(p); err != nil {
				t.Errorf("%s imports %s: %v", f, p, err)
			}
		}
	}
}

// OnlyKeyward refuses keyward packages other than those listed (paths
// under the module, such as "internal/storage"); other modules pass.
func OnlyKeyward(allowed ...string) func(string) error {
	return func(p string) error {
		if !strings.HasPrefix(p, Module) {
			return nil
		}
		for _, a := range allowed {
			if p == Module+a {
				return nil
			}
		}
		return fmt.Errorf("keyward packages allowed here: %v", allowed)
	}
}

// StdlibOnly refuses every import outside the standard library.
func StdlibOnly(p string) error {
	if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") {
		return fmt.Errorf("not in the standard library")
	}
	return nil
}

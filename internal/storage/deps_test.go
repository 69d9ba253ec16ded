package storage_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Arrows point down: storage imports no keyward package, and the backends
// import only storage. (Test files and storagetest may import more.)
func TestImports(t *testing.T) {
	const module = "github.com/keyward/keyward/"
	allowed := map[string][]string{
		".":        nil,
		"sqlite":   {module + "internal/storage"},
		"postgres": {module + "internal/storage"},
	}
	for dir, ok := range allowed {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if !strings.HasPrefix(p, module) {
					continue
				}
				found := false
				for _, a := range ok {
					found = found || p == a
				}
				if !found {
					t.Errorf("%s imports %s", f, p)
				}
			}
		}
	}
}

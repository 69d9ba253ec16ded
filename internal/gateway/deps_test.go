package gateway

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Arrows point down: the gateway imports storage, events and the ratelimit
// leaf (to parse its limits) only; it meets the secret store through
// SecretSource, declared here.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/keyward/keyward/internal/storage":   true,
		"github.com/keyward/keyward/internal/events":    true,
		"github.com/keyward/keyward/internal/ratelimit": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files (%v)", err)
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
			if strings.HasPrefix(p, "github.com/keyward/keyward/") && !allowed[p] {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}

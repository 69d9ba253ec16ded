package policy

import (
	"bufio"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected answers in testdata/*.txt")

// loadTestdata compiles every policy in testdata/policies.
func loadTestdata(t testing.TB) *Set {
	t.Helper()
	files, err := filepath.Glob("testdata/policies/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies in testdata/policies (%v)", err)
	}
	var ps []*Policy
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseMulti(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ps = append(ps, got...)
	}
	s, err := Compile(ps)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// goldenLine is one "<policies> <action> <resource> => <answer>" line.
type goldenLine struct {
	policies         []string
	action, resource string
	want             string
}

func parseGolden(t *testing.T, file, line string, n int) goldenLine {
	t.Helper()
	req, want, ok := strings.Cut(line, " => ")
	f := strings.Fields(req)
	if !ok || len(f) != 3 {
		t.Fatalf("%s:%d: want \"<policies> <action> <resource> => <answer>\", got %q", file, n, line)
	}
	unq := func(s string) string {
		if strings.HasPrefix(s, `"`) {
			u, err := strconv.Unquote(s)
			if err != nil {
				t.Fatalf("%s:%d: %v", file, n, err)
			}
			return u
		}
		return s
	}
	g := goldenLine{action: unq(f[1]), resource: unq(f[2]), want: strings.TrimSpace(want)}
	if f[0] != "-" {
		g.policies = strings.Split(f[0], ",")
	}
	return g
}

// runGolden checks (or with -rewrite, rewrites) every request line of file.
func runGolden(t *testing.T, file string, answer func(g goldenLine) string) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	cases := 0
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		g := parseGolden(t, file, line, n)
		cases++
		got := answer(g)
		if *rewrite {
			req, _, _ := strings.Cut(line, " => ")
			out.WriteString(req + " => " + got + "\n")
			continue
		}
		if got != g.want {
			t.Errorf("%s:%d: %s %s %q\n got: %s\nwant: %s", file, n, strings.Join(g.policies, ","), g.action, g.resource, got, g.want)
		}
	}
	if cases == 0 {
		t.Fatalf("%s: no cases", file)
	}
	if *rewrite {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// padding makes Decide take its trie path (more than scanLimit policies)
// without granting anything.
var padding = []string{"pad-1", "pad-2", "pad-3", "pad-4", "pad-5"}

func TestGoldenDecide(t *testing.T) {
	s := loadTestdata(t)
	runGolden(t, "testdata/decide.txt", func(g goldenLine) string {
		d := s.Decide(g.policies, g.action, g.resource)
		// The trie walk must agree with the per-policy scan.
		if len(g.policies) <= scanLimit {
			long := append(append([]string{}, g.policies...), padding...)
			if d2 := s.Decide(long, g.action, g.resource); d2 != d {
				t.Errorf("%v %s %q: scan says %v, trie walk says %v", g.policies, g.action, g.resource, d, d2)
			}
		}
		if d.Allowed != (d.Effect == EffectAllow) || (d.Rule < 0) != (d.Effect == EffectDefaultDeny) || (d.Policy == "") != (d.Rule < 0) {
			t.Errorf("inconsistent decision %#v", d)
		}
		return d.String()
	})
}

func TestGoldenAllowedBelow(t *testing.T) {
	s := loadTestdata(t)
	runGolden(t, "testdata/below.txt", func(g goldenLine) string {
		return strconv.FormatBool(s.AllowedBelow(g.policies, g.action, g.resource))
	})
}

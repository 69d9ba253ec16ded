package scan

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/keyward/keyward/internal/cputime"
	"github.com/keyward/keyward/internal/scan/source"
)

// corpusDir is the shared labeled corpus (see its README); tests skip when
// it is absent. KEYWARD_SCAN_CORPUS overrides the location.
func corpusDir() string {
	if d := os.Getenv("KEYWARD_SCAN_CORPUS"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared", "scan-corpus")
}

type corpusLabel struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	EndLine int    `json:"end_line"`
	Kind    string `json:"kind"`
	Secret  bool   `json:"secret"`
}

// TestCorpusQuality measures line-level recall and precision on the labeled
// corpus, the way its score.py does. The corpus is for measuring only: no
// rule is tuned to it. Set KEYWARD_SCAN_CORPUS_OUT to also write the findings
// as JSON for score.py.
func TestCorpusQuality(t *testing.T) {
	dir := corpusDir()
	lf, err := os.Open(filepath.Join(dir, "labels.jsonl"))
	if err != nil {
		t.Skipf("no corpus at %s: %v", dir, err)
	}
	defer lf.Close()
	var labels []corpusLabel
	sc := bufio.NewScanner(lf)
	for sc.Scan() {
		var l corpusLabel
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.EndLine == 0 {
			l.EndLine = l.Line
		}
		labels = append(labels, l)
	}
	byFile := map[string][]int{}
	for i, l := range labels {
		byFile[l.File] = append(byFile[l.File], i)
	}

	e := mustEngine(t, nil)
	type hit struct {
		File string `json:"file"`
		Line int    `json:"line"`
		Rule string `json:"rule"`
	}
	var hits []hit
	err = filepath.WalkDir(filepath.Join(dir, "files"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, f := range e.Scan(&source.Fragment{Path: filepath.ToSlash(rel), Data: data, StartLine: 1, StartColumn: 1}) {
			hits = append(hits, hit{f.File, f.Line, f.Rule})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("KEYWARD_SCAN_CORPUS_OUT"); out != "" {
		b, _ := json.Marshal(hits)
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	found := map[int]bool{}
	fpSeen := map[string]bool{}
	fpKinds := map[string]int{}
	fp := 0
	for _, h := range hits {
		label := -1
		for _, i := range byFile[h.File] {
			if labels[i].Line <= h.Line && h.Line <= labels[i].EndLine {
				label = i
				break
			}
		}
		if label >= 0 && labels[label].Secret {
			found[label] = true
			continue
		}
		key := fmt.Sprintf("%s:%d", h.File, h.Line)
		if fpSeen[key] {
			continue
		}
		fpSeen[key] = true
		fp++
		kind := "unlabeled-line"
		if label >= 0 {
			kind = labels[label].Kind
		}
		fpKinds[kind+" ("+h.Rule+")"]++
	}
	positives, tp := 0, 0
	missed := map[string]int{}
	for i, l := range labels {
		if !l.Secret {
			continue
		}
		positives++
		if found[i] {
			tp++
		} else {
			missed[l.Kind]++
		}
	}
	recall := float64(tp) / float64(positives)
	precision := float64(tp) / float64(tp+fp)
	t.Logf("corpus: %d labeled secrets, %d found, %d false positives: recall %.4f, precision %.4f", positives, tp, fp, recall, precision)
	for _, kv := range sortedCounts(missed) {
		t.Logf("  missed %s", kv)
	}
	for _, kv := range sortedCounts(fpKinds) {
		t.Logf("  false positive %s", kv)
	}
	if recall < 0.9 || precision < 0.9 {
		t.Errorf("recall %.4f, precision %.4f; want both ≥ 0.9", recall, precision)
	}
}

func sortedCounts(m map[string]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(out)
	return out
}

// BenchmarkScanCorpus scans the labeled corpus: small files dense with
// keywords and secrets, the opposite of a source tree.
func BenchmarkScanCorpus(b *testing.B) {
	dir := filepath.Join(corpusDir(), "files")
	if _, err := os.Stat(dir); err != nil {
		b.Skipf("no corpus: %v", err)
	}
	frags, total := loadTree(b, dir)
	e := mustEngine(b, nil)
	b.SetBytes(total)
	iters := 0
	cpu0 := cputime.Process()
	for b.Loop() {
		for _, f := range frags {
			e.Scan(f)
		}
		iters++
	}
	if cpu := cputime.Process() - cpu0; cpu > 0 {
		b.ReportMetric(float64(total)*float64(iters)/1e6/cpu.Seconds(), "MB/cpu-s")
	}
}

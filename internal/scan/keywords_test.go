package scan

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

type kwHit struct{ k, start, end int }

// naiveHits finds every keyword occurrence with bytes.Index on a lower-cased
// copy: the reference the automaton must agree with.
func naiveHits(keywords []string, data []byte) []kwHit {
	lower := bytes.ToLower(data) // ASCII data in these tests
	var out []kwHit
	for k, kw := range keywords {
		for off := 0; ; {
			i := bytes.Index(lower[off:], []byte(kw))
			if i < 0 {
				break
			}
			out = append(out, kwHit{k, off + i, off + i + len(kw)})
			off += i + 1
		}
	}
	return out
}

func sortHits(h []kwHit) {
	slices.SortFunc(h, func(a, b kwHit) int {
		if a.end != b.end {
			return a.end - b.end
		}
		if a.start != b.start {
			return a.start - b.start
		}
		return a.k - b.k
	})
}

func checkMatcher(t *testing.T, keywords []string, data []byte) {
	t.Helper()
	m := newKeywordMatcher(keywords)
	var got []kwHit
	m.match(data, func(k, s, e int) { got = append(got, kwHit{k, s, e}) })
	for i := 1; i < len(got); i++ {
		if got[i].end < got[i-1].end {
			t.Fatalf("hits out of end order: %v", got)
		}
	}
	want := naiveHits(keywords, data)
	sortHits(got)
	sortHits(want)
	if !slices.Equal(got, want) {
		t.Fatalf("keywords %q data %q:\n got  %v\n want %v", keywords, data, got, want)
	}
}

func TestKeywordMatcher(t *testing.T) {
	checkMatcher(t, []string{"he", "she", "his", "hers"}, []byte("ushers and HIS shE"))
	checkMatcher(t, []string{"aa", "aaa"}, []byte("aaaaa"))
	checkMatcher(t, []string{"sk", "sk_live_", "k_l"}, []byte("xsk_live_sk_LIVE_k"))
	checkMatcher(t, []string{"a"}, []byte("banana")) // one-byte keyword disables the pair skip
	checkMatcher(t, []string{"ab"}, []byte("a"))
	checkMatcher(t, []string{"ab"}, nil)
	r := rand.New(rand.NewPCG(40, 41))
	for range 300 {
		alpha := "abcAB_-"[:2+r.IntN(5)]
		var kws []string
		for range 1 + r.IntN(6) {
			kw := []byte(rs(r, alpha, 1+r.IntN(4)))
			kws = append(kws, string(bytes.ToLower(kw)))
		}
		kws = slices.Compact(slices.Sorted(slices.Values(kws)))
		checkMatcher(t, kws, []byte(rs(r, alpha+"xyz", r.IntN(60))))
	}
	// Keywords of two bytes or more: the skipping path.
	for range 300 {
		alpha := "abcAB_-"[:2+r.IntN(5)]
		var kws []string
		for range 1 + r.IntN(6) {
			kws = append(kws, string(bytes.ToLower([]byte(rs(r, alpha, 2+r.IntN(4))))))
		}
		kws = slices.Compact(slices.Sorted(slices.Values(kws)))
		if newKeywordMatcher(kws).starts == nil {
			t.Fatal("skipping disabled for keywords of two bytes or more")
		}
		checkMatcher(t, kws, []byte(rs(r, alpha+"xyz", r.IntN(60))))
	}
	// The built-in keyword set.
	e := mustEngine(t, nil)
	data := []byte("token=ghp_x SK12 akia password:: -----BEGIN PRIVATE KEY----- eyJhb xoxb- HOOKS.SLACK.COM/ sk-ant-api03-")
	checkMatcher(t, e.keywords, data)
	checkMatcher(t, e.keywords, []byte(rs(r, "tokenpasswrdsecrtkyhgp_-:AIZ", 5000)))
}

func FuzzKeywordMatcher(f *testing.F) {
	f.Add("he,she,his,hers", []byte("ushers"))
	f.Add("sk,sk_live_,q~", []byte("sk_live_q~xsk"))
	f.Fuzz(func(t *testing.T, kws string, data []byte) {
		var keywords []string
		for _, k := range bytes.Split(bytes.ToLower([]byte(kws)), []byte(",")) {
			if len(k) > 0 && len(keywords) < 20 {
				keywords = append(keywords, string(k))
			}
		}
		keywords = slices.Compact(slices.Sorted(slices.Values(keywords)))
		if len(keywords) == 0 {
			return
		}
		// The reference lower-cases bytes.ToLower-style, so keep to ASCII.
		for _, c := range data {
			if c >= 0x80 {
				return
			}
		}
		for _, k := range keywords {
			for i := 0; i < len(k); i++ {
				if k[i] >= 0x80 {
					return
				}
			}
		}
		checkMatcher(t, keywords, data)
	})
}

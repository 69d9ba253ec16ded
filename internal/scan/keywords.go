package scan

// keywordMatcher is an Aho-Corasick automaton over the rules' keywords,
// compiled to a dense DFA over byte classes and matched ASCII
// case-insensitively.
//
// Why not a library automaton: the prefilter touches every byte scanned, so
// its inner loop is the scanner's speed limit. Pointer-linked tries with 256
// children per node (4 KiB+ per node) miss the cache on most bytes; this one
// maps each byte to one of a few dozen classes (bytes that occur in no
// keyword share class 0) and keeps one int32 transition table, so the loop is
// two loads per byte with no allocation. Reported hits carry their positions,
// so no second pass over the input is needed to find where keywords occur,
// and no lower-cased copy of the input is made.
type keywordMatcher struct {
	class  [256]uint8 // byte → class; 'A' and 'a' share one
	nclass int32
	// delta[row+class] is the next state's row offset (state*nclass), with
	// the sign bit set when that state ends one or more keywords.
	delta []int32
	// out[outIdx[s]:outIdx[s+1]] are the keywords ending in state s,
	// longest first (indexed by state number = row/nclass).
	outIdx []int32
	out    []int32
	lens   []int32 // keyword lengths
	// starts[class(a)<<6|class(b)] has bit class(c) set when a keyword
	// starts with the bytes a, b, c (all bits for a two-byte keyword a, b).
	// In the start state the matcher skips, with independent table lookups,
	// every position where no keyword starts; that is most of them. Nil
	// (no skipping) when a keyword has one byte or there are more than 64
	// classes.
	starts *[64 * 64]uint64
}

// Flags in delta entries, above the row offset.
const (
	outFlag     = -1 << 31 // the state ends a keyword
	shallowFlag = 1 << 30  // the state has depth 1 (one keyword byte read)
	rowMask     = shallowFlag - 1
)

// newKeywordMatcher builds the automaton for lower-case keywords.
func newKeywordMatcher(keywords []string) *keywordMatcher {
	m := &keywordMatcher{}
	// Byte classes.
	next := uint8(1)
	for _, k := range keywords {
		for i := 0; i < len(k); i++ {
			c := lowerTable[k[i]]
			if m.class[c] == 0 {
				if next == 255 {
					panic("scan: too many distinct keyword bytes")
				}
				m.class[c] = next
				next++
			}
		}
	}
	for c := 'A'; c <= 'Z'; c++ {
		m.class[c] = m.class[c+'a'-'A']
	}
	m.nclass = int32(next)
	nc := int(next)

	// Trie. goto_[s*nc+cls] = child state or -1.
	maxStates := 1
	for _, k := range keywords {
		maxStates += len(k)
	}
	goto_ := make([]int32, nc, maxStates*nc)
	for i := range goto_ {
		goto_[i] = -1
	}
	outs := make([][]int32, 1, maxStates)
	depth := make([]int32, 1, maxStates)
	for ki, k := range keywords {
		s := int32(0)
		for i := 0; i < len(k); i++ {
			cls := int(m.class[lowerTable[k[i]]])
			t := goto_[int(s)*nc+cls]
			if t < 0 {
				t = int32(len(outs))
				goto_[int(s)*nc+cls] = t
				outs = append(outs, nil)
				depth = append(depth, depth[s]+1)
				for range nc {
					goto_ = append(goto_, -1) // within capacity
				}
			}
			s = t
		}
		outs[s] = append(outs[s], int32(ki))
		m.lens = append(m.lens, int32(len(k)))
	}
	n := len(outs)

	// Breadth-first: failure links and the full transition function,
	// built in place over the trie (a missing transition of state s is
	// that of its failure state, which is shallower and so already
	// complete), so no second table is allocated.
	delta := goto_[:n*nc]
	fail := make([]int32, n)
	queue := make([]int32, 0, n)
	for c := range nc {
		if t := delta[c]; t < 0 {
			delta[c] = 0
		} else {
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		// Outputs of the failure state are outputs of s too.
		outs[s] = append(outs[s], outs[fail[s]]...)
		row, frow := int(s)*nc, int(fail[s])*nc
		for c := range nc {
			t := delta[row+c]
			if t < 0 {
				delta[row+c] = delta[frow+c]
				continue
			}
			fail[t] = delta[frow+c]
			queue = append(queue, t)
		}
	}
	// Longest keyword first, so that hits ending at one position are
	// reported in order of their start.
	for s := range outs {
		o := outs[s]
		for i := 1; i < len(o); i++ {
			for j := i; j > 0 && m.lens[o[j]] > m.lens[o[j-1]]; j-- {
				o[j], o[j-1] = o[j-1], o[j]
			}
		}
	}
	// Encode: row offsets with the output flag.
	if n*nc > rowMask {
		panic("scan: keyword automaton too large")
	}
	for i, t := range delta {
		v := t * int32(nc)
		if len(outs[t]) > 0 {
			v |= outFlag
		}
		if depth[t] == 1 {
			v |= shallowFlag
		}
		delta[i] = v
	}
	m.delta = delta
	m.outIdx = make([]int32, n+1)
	for s, o := range outs {
		m.outIdx[s] = int32(len(m.out))
		m.out = append(m.out, o...)
	}
	m.outIdx[n] = int32(len(m.out))
	m.starts = new([64 * 64]uint64)
	for _, k := range keywords {
		if len(k) < 2 || nc > 64 {
			m.starts = nil
			break
		}
		ab := int(m.class[k[0]])<<6 | int(m.class[k[1]])
		if len(k) == 2 {
			m.starts[ab] = ^uint64(0)
		} else {
			m.starts[ab] |= 1 << m.class[k[2]]
		}
	}
	return m
}

// match calls hit(keyword, start, end) for every occurrence of every
// keyword in data, in order of end position.
//
// In the start state no match is in progress, so a position where no
// keyword starts (by its first three bytes) can be passed over: that loop
// is a few independent table lookups per byte, with no dependency from one
// byte to the next. A depth-1 state is the start state one byte back, so the
// same test lets the matcher return to skipping from there.
func (m *keywordMatcher) match(data []byte, hit func(k, start, end int)) {
	if m.starts == nil {
		m.matchPlain(data, hit)
		return
	}
	delta, class, starts := m.delta, &m.class, m.starts
	n := len(data)
	row := int32(0)
	for i := 0; i < n; i++ {
		if row&shallowFlag != 0 && i+1 < n &&
			starts[(uint(class[data[i-1]])<<6|uint(class[data[i]]))&4095]>>(class[data[i+1]]&63)&1 == 0 {
			row = 0
		}
		if row == 0 && i+2 < n {
			c0, c1 := uint(class[data[i]]), uint(class[data[i+1]])
			for {
				c2 := uint(class[data[i+2]])
				if starts[(c0<<6|c1)&4095]>>(c2&63)&1 != 0 {
					break
				}
				i++
				if i+2 >= n {
					break
				}
				c0, c1 = c1, c2
			}
		}
		row = delta[(row&rowMask)+int32(class[data[i]])]
		if row < 0 {
			row &^= outFlag
			s := (row & rowMask) / m.nclass
			for _, k := range m.out[m.outIdx[s]:m.outIdx[s+1]] {
				hit(int(k), i+1-int(m.lens[k]), i+1)
			}
		}
	}
}

// matchPlain is match without skipping.
func (m *keywordMatcher) matchPlain(data []byte, hit func(k, start, end int)) {
	delta, class := m.delta, &m.class
	row := int32(0)
	for i, c := range data {
		row = delta[(row&rowMask)+int32(class[c])]
		if row < 0 {
			row &^= outFlag
			s := (row & rowMask) / m.nclass
			for _, k := range m.out[m.outIdx[s]:m.outIdx[s+1]] {
				hit(int(k), i+1-int(m.lens[k]), i+1)
			}
		}
	}
}

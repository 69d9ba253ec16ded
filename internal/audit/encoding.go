package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// The one byte encoding of what is hashed and signed. It is computed from the
// values exactly as stored (detail is the stored JSON text, not a re-marshalled
// map), so verification never depends on a JSON encoder's choices.
//
//	entry      = version(1 byte = 1) ‖ seq(int64) ‖ time(int64 unix ns)
//	             ‖ str(request_id) ‖ str(principal) ‖ str(auth_method)
//	             ‖ str(accessor_hmac) ‖ str(action) ‖ str(resource)
//	             ‖ str(environment) ‖ str(source_addr) ‖ str(user_agent)
//	             ‖ str(outcome) ‖ status(int64) ‖ latency_us(int64) ‖ str(detail)
//	str(s)     = len(s) as uint32 ‖ s
//	hash       = SHA-256(prev_hash ‖ entry)
//	checkpoint = "keyward audit checkpoint v1\n" ‖ seq(int64) ‖ hash ‖ time(int64)
//	anchor     = "keyward audit anchor v1\n" ‖ seq(int64) ‖ hash ‖ time(int64)
//
// Integers are big-endian. Every variable-length field carries its length, so
// the encoding is injective: no two different entries share bytes (moving a
// byte from one field to its neighbour changes a length).

const (
	encodingVersion = 1
	// HashSize is the size of an entry hash (SHA-256).
	HashSize = sha256.Size

	checkpointContext = "keyward audit checkpoint v1\n"
	anchorContext     = "keyward audit anchor v1\n"
)

// Limits on what one entry stores. Longer values are cut (at a UTF-8
// boundary) rather than refused: an audit entry must never fail because a
// client sent a long header.
const (
	// MaxFieldBytes caps each string field.
	MaxFieldBytes = 1024
	// MaxDetailKeys caps the number of detail pairs.
	MaxDetailKeys = 32
	// MaxDetailBytes caps each detail key and value.
	MaxDetailBytes = 1024
)

// Outcomes.
const (
	OutcomeAllowed = "allowed"
	OutcomeDenied  = "denied"
	OutcomeError   = "error"
)

// zeroHash is the prev_hash of the first entry.
var zeroHash = make([]byte, HashSize)

// row is an entry as stored: detail is the stored JSON text and time is unix
// nanoseconds. It is what the hash covers. A block of audit_blocks holds
// the entry text (entrytext.go) and hash of each of its entries, its seq
// is its last entry's; prevHash is the previous entry's hash, not stored.
type row struct {
	seq                                        int64
	time                                       int64
	requestID, principal, authMethod, accessor string
	action, resource, environment, sourceAddr  string
	userAgent, outcome                         string
	status, latencyUS                          int64
	detail                                     string
	prevHash, hash                             []byte
}

// canonical appends the encoding of r (without prev_hash) to b.
func (r *row) canonical(b []byte) []byte {
	b = append(b, encodingVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.seq))
	b = binary.BigEndian.AppendUint64(b, uint64(r.time))
	for _, s := range [...]string{r.requestID, r.principal, r.authMethod, r.accessor,
		r.action, r.resource, r.environment, r.sourceAddr, r.userAgent, r.outcome} {
		b = appendStr(b, s)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(r.status))
	b = binary.BigEndian.AppendUint64(b, uint64(r.latencyUS))
	return appendStr(b, r.detail)
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// sum returns SHA-256(prevHash ‖ canonical(r)); buf is scratch space.
func (r *row) sum(prevHash []byte, buf []byte) ([HashSize]byte, []byte) {
	buf = append(buf[:0], prevHash...)
	buf = r.canonical(buf)
	return sha256.Sum256(buf), buf
}

// checkpointMessage is what a checkpoint's signature covers.
func checkpointMessage(seq int64, hash []byte, t int64) []byte {
	return signedMessage(checkpointContext, seq, hash, t)
}

// anchorMessage is what the prune anchor's signature covers.
func anchorMessage(seq int64, hash []byte, t int64) []byte {
	return signedMessage(anchorContext, seq, hash, t)
}

func signedMessage(context string, seq int64, hash []byte, t int64) []byte {
	b := make([]byte, 0, len(context)+8+len(hash)+8)
	b = append(b, context...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = append(b, hash...)
	return binary.BigEndian.AppendUint64(b, uint64(t))
}

// clean makes s storable on both backends and bounded: invalid UTF-8 and NUL
// (which PostgreSQL TEXT refuses) become U+FFFD, and s is cut to max bytes at
// a rune boundary. One bad header must not fail a whole group-commit batch.
func clean(s string, max int) string {
	if len(s) <= max && isPlainASCII(s) {
		return s // most fields: checked in one pass
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return truncateUTF8(s, max)
}

// truncateUTF8 cuts s to at most max bytes, at a rune's start.
func truncateUTF8(s string, max int) string {
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// encodeDetail returns the JSON text stored (and hashed) for an entry's
// detail, given as a map (m) or as pairs (ds, when m is empty): "" when
// it is empty, else the cleaned pairs as a JSON object, keys sorted
// (encoded here rather than by json.Marshal, which costs several µs per
// entry through reflection; decodeDetail reads either). Past MaxDetailKeys
// the lexically largest keys are dropped and the key "_truncated" records
// how many. The pairs stand for the map they make (a key given twice
// keeps its last value), and store exactly as it would. With wantMap it
// also returns the cleaned detail as a map (m itself when cleaning
// changed nothing), for the caller's entry.
//
// A detail of up to 8 clean pairs with distinct keys (a gateway call's)
// is sorted in place by insertion (the keys often come sorted, or nearly)
// and written without another allocation than its text.
func encodeDetail(m map[string]string, ds Details, wantMap bool) (string, map[string]string, error) {
	if len(m) > 0 && len(ds) > 0 {
		return "", nil, fmt.Errorf("%w: both Detail and Details are set", ErrInvalid)
	}
	var small [8]detailPair
	pairs := small[:0]
	for k, v := range m {
		pairs = append(pairs, detailPair{k, v})
	}
	for _, d := range ds {
		pairs = append(pairs, detailPair{d.Key, d.Value})
	}
	if len(pairs) == 0 {
		return "", nil, nil
	}
	if len(pairs) <= len(small) && allClean(pairs) && sortPairs(pairs) {
		if wantMap && m == nil {
			m = make(map[string]string, len(pairs))
			for _, p := range pairs {
				m[p.k] = p.v
			}
		}
	} else {
		// from the sources, not pairs (which sortPairs may have shuffled):
		// of a key given twice in ds, the last value stays
		src := m
		m = make(map[string]string, min(len(pairs), MaxDetailKeys+1))
		for k, v := range src {
			m[clean(k, MaxDetailBytes)] = clean(v, MaxDetailBytes)
		}
		for _, d := range ds {
			m[clean(d.Key, MaxDetailBytes)] = clean(d.Value, MaxDetailBytes)
		}
		if len(m) > MaxDetailKeys {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys[MaxDetailKeys:] {
				delete(m, k)
			}
			m["_truncated"] = fmt.Sprint(len(keys) - MaxDetailKeys)
		}
		pairs = pairs[:0]
		for k, v := range m {
			pairs = append(pairs, detailPair{k, v})
		}
		slices.SortFunc(pairs, func(a, b detailPair) int { return strings.Compare(a.k, b.k) })
	}
	size := 2
	for _, p := range pairs {
		size += len(p.k) + len(p.v) + 6
	}
	var stack [512]byte // the text is built here and copied once, into its string
	b := stack[:0]
	if size > len(stack) {
		b = make([]byte, 0, size)
	}
	b = append(b, '{')
	for i, p := range pairs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, p.k)
		b = append(b, ':')
		b = appendJSONString(b, p.v)
	}
	b = append(b, '}')
	if !wantMap {
		m = nil
	}
	return string(b), m, nil
}

// sortPairs sorts a few pairs by key by insertion, which costs one
// comparison a pair when they come sorted. It reports false when two
// share a key, and then stops, leaving ps in no useful order.
func sortPairs(ps []detailPair) bool {
	for i := 1; i < len(ps); i++ {
		p := ps[i]
		j := i
		for ; j > 0 && ps[j-1].k >= p.k; j-- {
			if ps[j-1].k == p.k {
				return false
			}
			ps[j] = ps[j-1]
		}
		ps[j] = p
	}
	return true
}

// detailPair is a detail's key and value.
type detailPair struct{ k, v string }

// allClean reports whether every key and value of ps is clean as it is.
func allClean(ps []detailPair) bool {
	for _, p := range ps {
		if !isClean(p.k, MaxDetailBytes) || !isClean(p.v, MaxDetailBytes) {
			return false
		}
	}
	return true
}

// isClean reports whether clean(s, max) is s: valid UTF-8 without NUL, at
// most max bytes.
func isClean(s string, max int) bool {
	return len(s) <= max && (isPlainASCII(s) || strings.IndexByte(s, 0) < 0 && utf8.ValidString(s))
}

// isPlainASCII reports whether every byte of s is from 0x01 to 0x7f (so s
// is valid UTF-8 without NUL), eight bytes at a time: such a word has no
// high bit set, nor one in its bytes less one (only a zero byte borrows).
func isPlainASCII(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(s) >= 8 {
		x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		if (x|(x-ones))&highs != 0 {
			return false
		}
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// decodeDetail parses a stored detail column. The text comes from the
// database, which an attacker may have edited: it is parsed, never trusted.
func decodeDetail(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("audit: stored detail is not a JSON object of strings: %w", err)
	}
	return m, nil
}

package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// A known-answer vector pins the encoding: changing it breaks every stored
// chain, so it must be a deliberate, versioned change. The expected hash was
// computed independently (Python: hashlib.sha256 over struct.pack'd fields
// following the layout in encoding.go).
func TestCanonicalKnownAnswer(t *testing.T) {
	r := row{
		seq: 1, time: 1700000000000000000, requestID: "req-1", principal: "alice",
		authMethod: "token", accessor: "ab12", action: "read", resource: "secret/app/db",
		environment: "prod", sourceAddr: "192.0.2.1", userAgent: "cli/1", outcome: OutcomeAllowed,
		status: 200, latencyUS: 150, detail: `{"version":"3"}`,
	}
	got, _ := r.computeHash(zeroHash, nil)
	const want = "c9a2fca7dca14370612845eae1cb61f06a7f1ef2abdf187317bb330ec627f6ee"
	if hex.EncodeToString(got) != want {
		t.Errorf("hash = %x, want %s", got, want)
	}
	enc := r.canonical(nil)
	if enc[0] != encodingVersion || binary.BigEndian.Uint64(enc[1:9]) != 1 {
		t.Errorf("encoding starts %x", enc[:9])
	}
}

// Moving bytes between neighbouring fields, or between the fields and
// the detail, changes the hash: every field carries its length.
func TestCanonicalFieldBoundaries(t *testing.T) {
	base := row{seq: 7, principal: "ab", action: "c", outcome: OutcomeAllowed}
	variants := []row{base, base, base, base, base}
	variants[1].principal, variants[1].action = "a", "bc"
	variants[2].principal, variants[2].action = "abc", ""
	variants[3].seq = 8
	variants[4].detail = `{}`
	seen := map[string]int{}
	for i, r := range variants {
		h, _ := r.computeHash(zeroHash, nil)
		if j, dup := seen[string(h)]; dup {
			t.Errorf("variants %d and %d hash alike", j, i)
		}
		seen[string(h)] = i
	}
	other := bytes.Repeat([]byte{1}, HashSize)
	h1, _ := base.computeHash(zeroHash, nil)
	h2, _ := base.computeHash(other, nil)
	if bytes.Equal(h1, h2) {
		t.Error("prev_hash does not change the hash")
	}
}

func TestSignedMessagesAreDistinct(t *testing.T) {
	h := bytes.Repeat([]byte{9}, HashSize)
	if bytes.Equal(checkpointMessage(5, h, 1), anchorMessage(5, h, 1)) {
		t.Error("a checkpoint signature would verify as an anchor")
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                "plain",
		"nul\x00byte":          "nul\uFFFDbyte",
		"bad\xffutf8":          "bad\uFFFDutf8",
		strings.Repeat("é", 5): strings.Repeat("é", 5),
	} {
		if got := clean(in, 100); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
	if got := clean("aé", 2); got != "a" {
		t.Errorf("clean cut a rune in half: %q", got)
	}
}

// decodeCanonical is the inverse of row.canonical, for the fuzz test: an
// encoding that decodes back to its input is injective.
func decodeCanonical(b []byte) (row, error) {
	var r row
	errShort := errors.New("short")
	if len(b) < 17 || b[0] != encodingVersion {
		return r, errShort
	}
	r.seq = int64(binary.BigEndian.Uint64(b[1:]))
	r.time = int64(binary.BigEndian.Uint64(b[9:]))
	b = b[17:]
	str := func() (string, error) {
		if len(b) < 4 {
			return "", errShort
		}
		n := binary.BigEndian.Uint32(b)
		if uint32(len(b)-4) < n {
			return "", errShort
		}
		s := string(b[4 : 4+n])
		b = b[4+n:]
		return s, nil
	}
	for _, p := range []*string{&r.requestID, &r.principal, &r.authMethod, &r.accessor, &r.action,
		&r.resource, &r.environment, &r.sourceAddr, &r.userAgent, &r.outcome} {
		s, err := str()
		if err != nil {
			return r, err
		}
		*p = s
	}
	if len(b) < 16 {
		return r, errShort
	}
	r.status = int64(binary.BigEndian.Uint64(b))
	r.latencyUS = int64(binary.BigEndian.Uint64(b[8:]))
	b = b[16:]
	d, err := str()
	if err != nil || len(b) != 0 {
		return r, errors.New("bad detail or trailing bytes")
	}
	r.detail = d
	return r, nil
}

func FuzzEntryEncoding(f *testing.F) {
	f.Add(int64(1), int64(1700000000000000000), "req", "alice", "secret/a", "UA/1.0", "k", "v", int64(200))
	f.Add(int64(0), int64(-1), "", "", "", "", "", "", int64(0))
	f.Add(int64(99), int64(5), "a\x00b", "\xff\xfe", "\"quoted\\\"", "\u2028\n\t", "\x01", "é", int64(-7))
	f.Add(int64(3), int64(4), "", "", "", "", "k", strings.Repeat("\x01", 2*MaxDetailBytes), int64(0))
	f.Fuzz(func(t *testing.T, seq, tm int64, reqID, principal, resource, ua, dk, dv string, status int64) {
		detail := map[string]string{dk: dv}
		text, m, err := encodeDetail(detail, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		r := row{
			seq: seq, time: tm, requestID: clean(reqID, MaxFieldBytes), principal: clean(principal, MaxFieldBytes),
			resource: clean(resource, MaxFieldBytes), userAgent: clean(ua, MaxFieldBytes),
			outcome: OutcomeDenied, status: status, latencyUS: seq ^ tm, detail: text,
		}
		for i, s := range []string{r.requestID, r.principal, r.resource, r.userAgent, r.detail} {
			if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 || (i < 4 && len(s) > MaxFieldBytes) {
				t.Fatalf("cleaned value %q is not storable", s)
			}
		}
		got, err := decodeCanonical(r.canonical(nil))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("canonical encoding does not round-trip: %+v, %v\nwant %+v", got, err, r)
		}
		back, err := decodeDetail(text)
		if err != nil || !maps.Equal(back, m) {
			t.Fatalf("detail %q decodes to %v, %v; want %v", text, back, err, m)
		}
		// The detail encoder's JSON strings carry values exactly.
		for _, s := range []string{r.requestID, r.principal, r.resource, r.userAgent, r.detail} {
			var dec string
			if err := json.Unmarshal(appendJSONString(nil, s), &dec); err != nil || dec != s {
				t.Fatalf("appendJSONString(%q) decodes to %q, %v", s, dec, err)
			}
		}
	})
}

// The detail column comes from the database: whatever it holds, decoding
// neither panics nor returns a map that would store differently.
func FuzzDecodeDetail(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"a":"b"}`, `{"a":1}`, `[]`, `{"\u0000":"\ud800"}`, `{"a":"b","a":"c"}`, `nul`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := decodeDetail(s)
		if err != nil {
			return
		}
		if len(m) > MaxDetailKeys {
			return
		}
		text, cleaned, err := encodeDetail(m, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeDetail(text)
		if err != nil || !maps.Equal(again, cleaned) {
			t.Fatalf("re-encoded detail %q decodes to %v, %v; want %v", text, again, err, cleaned)
		}
	})
}

// A gateway call's detail is encoded with one allocation: its text.
func TestEncodeDetailAllocations(t *testing.T) {
	d := map[string]string{"method": "GET", "path": "/v1/ping", "bytes_in": "0", "bytes_out": "27"}
	want, _, _ := encodeDetail(d, nil, true)
	if want != `{"bytes_in":"0","bytes_out":"27","method":"GET","path":"/v1/ping"}` {
		t.Fatalf("encoded %s", want)
	}
	if n := testing.AllocsPerRun(100, func() {
		if got, _, _ := encodeDetail(d, nil, true); got != want {
			t.Fatal(got)
		}
	}); n > 1 {
		t.Errorf("encodeDetail of four fields: %.0f allocations, want 1", n)
	}
}

// Details store exactly as the map they make (a key listed twice keeps
// its last value): the same text, hashed the same, and the same cleaned
// map returned, whether they are few and clean (sorted in place) or not.
func TestEncodeDetailsAsMap(t *testing.T) {
	keys := []string{"method", "path", "bytes_in", "bytes_out", "websocket", "duration_ms", "ended_by", "a",
		"b\x00", "\xff", "é", "k\x00", "k\uFFFD", strings.Repeat("x", MaxDetailBytes+3), ""}
	values := []string{"GET", "", "0", "a\"b\\c\n", "\x01", "\xfe\xff", strings.Repeat("é", MaxDetailBytes)}
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []Details{
		{{"method", "GET"}, {"path", "/v1/ping"}, {"bytes_in", "0"}, {"bytes_out", "27"}},
		{{"bytes_in", "0"}, {"bytes_out", "27"}, {"method", "GET"}, {"path", "/v1/ping"}},
		{{"a", "1"}, {"a", "2"}},
		{{"b", "1"}, {"a", "2"}, {"b", "3"}},
		{{"k\x00", "1"}, {"k\uFFFD", "2"}}, // they clean to one key
	}
	for range 2000 {
		n := rng.IntN(MaxDetailKeys + 6)
		if rng.IntN(2) == 0 {
			n = rng.IntN(10)
		}
		var ds Details
		for range n {
			k := keys[rng.IntN(len(keys))]
			if rng.IntN(4) == 0 {
				k += strconv.Itoa(rng.IntN(40))
			}
			ds = append(ds, Detail{k, values[rng.IntN(len(values))]})
		}
		cases = append(cases, ds)
	}
	for _, ds := range cases {
		m := make(map[string]string, len(ds))
		for _, d := range ds {
			m[d.Key] = d.Value
		}
		if len(m) > 0 && slices.ContainsFunc(ds, func(d Detail) bool { return !isClean(d.Key, MaxDetailBytes) }) {
			// Keys that clean to one key: which value the map keeps
			// depends on its iteration order; the text must still decode
			// to the map returned.
			text, got, err := encodeDetail(nil, ds, true)
			if back, derr := decodeDetail(text); err != nil || derr != nil || !maps.Equal(back, got) {
				t.Fatalf("%q: %s decodes to %v, %v; returned %v, %v", ds, text, back, derr, got, err)
			}
			continue
		}
		wantText, wantMap, err := encodeDetail(m, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		text, got, err := encodeDetail(nil, ds, true)
		if err != nil || text != wantText || !maps.Equal(got, wantMap) {
			t.Fatalf("%q: encoded %s, %v, %v; the map's %s, %v", ds, text, got, err, wantText, wantMap)
		}
		if text, got, _ := encodeDetail(nil, ds, false); text != wantText || got != nil {
			t.Fatalf("%q without the map: %s, %v", ds, text, got)
		}
	}
	if _, _, err := encodeDetail(map[string]string{"a": "b"}, Details{{"a", "b"}}, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("both Detail and Details: %v, want ErrInvalid", err)
	}
}

// Details' Set replaces a key's value; Get reads it.
func TestDetailsSet(t *testing.T) {
	var d Details
	d.Set("method", "GET")
	d.Set("path", "/a")
	d.Set("method", "POST")
	if len(d) != 2 || d.Get("method") != "POST" || d.Get("path") != "/a" || d.Get("none") != "" {
		t.Fatalf("details %q", d)
	}
}

// A gateway call's details are encoded with one allocation (their text),
// and without the map when the caller does not want it (AppendAsync).
func TestEncodeDetailsAllocations(t *testing.T) {
	d := Details{{"method", "GET"}, {"path", "/v1/ping"}, {"bytes_in", "0"}, {"bytes_out", "27"}}
	want := `{"bytes_in":"0","bytes_out":"27","method":"GET","path":"/v1/ping"}`
	if n := testing.AllocsPerRun(100, func() {
		if got, m, _ := encodeDetail(nil, d, false); got != want || m != nil {
			t.Fatal(got, m)
		}
	}); n > 1 {
		t.Errorf("encodeDetail of four pairs: %.0f allocations, want 1", n)
	}
}

// isPlainASCII agrees with a byte-by-byte check for every byte value at
// every position of strings of every length up to 20.
func TestIsPlainASCII(t *testing.T) {
	want := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] == 0 || s[i] >= 0x80 {
				return false
			}
		}
		return true
	}
	for n := range 21 {
		for at := range n {
			for c := range 256 {
				b := []byte(strings.Repeat("a", n))
				b[at] = byte(c)
				s := string(b)
				if got := isPlainASCII(s); got != want(s) {
					t.Fatalf("isPlainASCII(%q) = %v", s, got)
				}
				if clean(s, MaxFieldBytes) != cleanSlow(s, MaxFieldBytes) {
					t.Fatalf("clean(%q) = %q, want %q", s, clean(s, MaxFieldBytes), cleanSlow(s, MaxFieldBytes))
				}
			}
		}
	}
}

// cleanSlow is clean without its ASCII fast path.
func cleanSlow(s string, max int) string {
	return truncateUTF8(strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD"), max)
}

// prepare refuses a time exactly when its year (in its zone) is outside
// 1678-2261, whether or not the quick check of its unix seconds decides.
func TestPrepareTimeRange(t *testing.T) {
	l := &Log{opts: Options{Now: time.Now}}
	var zones []*time.Location
	for _, h := range []int{-26, -12, -1, 0, 1, 14, 26} {
		zones = append(zones, time.FixedZone("z", h*3600))
	}
	for _, y := range []int{1677, 1678, 1679, 2000, 2260, 2261, 2262} {
		for _, base := range []time.Time{time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(y, 12, 31, 23, 59, 59, 999999999, time.UTC)} {
			for _, d := range []time.Duration{-48 * time.Hour, -time.Hour, -time.Nanosecond, 0, time.Nanosecond, time.Hour, 48 * time.Hour} {
				for _, z := range zones {
					tm := base.Add(d).In(z)
					e := &Entry{Time: tm, Outcome: OutcomeAllowed}
					_, _, err := l.prepare(e, false)
					if want := tm.Year() < 1678 || tm.Year() > 2261; want != errors.Is(err, ErrInvalid) {
						t.Errorf("prepare of %s: %v", tm, err)
					}
				}
			}
		}
	}
}

package credential

import (
	"hash/crc32"
	"strings"
	"testing"
)

func TestNewParseRoundTrip(t *testing.T) {
	for _, typ := range []Type{AccessToken, RefreshToken, APIKey, Enrollment, Wrapped} {
		s := New(typ)
		if len(s) != Len {
			t.Fatalf("len(%q prefix) = %d, want %d", typ.Prefix(), len(s), Len)
		}
		if !strings.HasPrefix(s, typ.Prefix()) {
			t.Fatalf("New(%c) lacks prefix %q", typ, typ.Prefix())
		}
		got, err := Parse(s)
		if err != nil || got != typ {
			t.Fatalf("Parse(New(%c)) = %c, %v", typ, got, err)
		}
		if !ValidChecksum(s[PrefixLen:]) {
			t.Fatalf("ValidChecksum rejects a fresh credential")
		}
	}
}

func TestNewIsRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s := New(AccessToken)
		if seen[s] {
			t.Fatal("duplicate credential")
		}
		seen[s] = true
	}
}

func TestKnownAnswer(t *testing.T) {
	random := strings.Repeat("a", RandomLen)
	sum := Base62CRC32(crc32.ChecksumIEEE([]byte(random)), ChecksumLen)
	s := "kwt_" + random + sum
	if typ, err := Parse(s); err != nil || typ != AccessToken {
		t.Fatalf("Parse(known) = %c, %v", typ, err)
	}
	if Base62CRC32(0, 6) != "000000" || Base62CRC32(61, 6) != "00000z" || Base62CRC32(62, 6) != "000010" {
		t.Fatal("base62 encoding of small values is wrong")
	}
	if Base62CRC32(0xFFFFFFFF, 6) != "4gfFC3" {
		t.Fatalf("base62(2^32-1) = %s, want 4gfFC3", Base62CRC32(0xFFFFFFFF, 6))
	}
}

func TestParseRejects(t *testing.T) {
	good := New(AccessToken)
	flip := func(i int) string {
		b := []byte(good)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrLength},
		{"truncated", good[:Len-1], ErrLength},
		{"extended", good + "a", ErrLength},
		{"bad type", "kwz_" + good[4:], ErrPrefix},
		{"bad prefix", "xwt_" + good[4:], ErrPrefix},
		{"no underscore", "kwt-" + good[4:], ErrPrefix},
		{"charset", good[:10] + "-" + good[11:], ErrCharset},
		{"nul", good[:10] + "\x00" + good[11:], ErrCharset},
		{"checksum in random part", flip(10), ErrChecksum},
		{"checksum in sum", flip(Len - 1), ErrChecksum},
	}
	for _, c := range cases {
		if _, err := Parse(c.in); err != c.want {
			t.Errorf("%s: Parse = %v, want %v", c.name, err, c.want)
		}
	}
	if err := ParseType(good, APIKey); err != ErrPrefix {
		t.Errorf("ParseType(token, APIKey) = %v, want ErrPrefix", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(New(AccessToken))
	f.Add("kwk_" + strings.Repeat("0", 46))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		typ, err := Parse(s)
		if err != nil {
			return
		}
		if !typ.Valid() || len(s) != Len || !ValidChecksum(s[PrefixLen:]) {
			t.Fatalf("Parse accepted an invalid credential %q", s)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	s := New(AccessToken)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNewMarked(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		s := NewMarked(APIKey, "test")
		if !strings.HasPrefix(s, "kwk_test") || len(s) != Len {
			t.Fatalf("NewMarked = %q", s)
		}
		if typ, err := Parse(s); err != nil || typ != APIKey || !ValidChecksum(s[PrefixLen:]) {
			t.Fatalf("Parse(marked) = %c, %v", typ, err)
		}
		if seen[s] {
			t.Fatal("duplicate marked credential")
		}
		seen[s] = true
	}
	for _, bad := range []string{"test_", "toolongmarker", "tést"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewMarked(%q) did not panic", bad)
				}
			}()
			NewMarked(APIKey, bad)
		}()
	}
}

func TestChecksumStringMatchesCRC32(t *testing.T) {
	for _, s := range []string{"", "a", "abcdefgh", "abcdefghi", strings.Repeat("Z9", RandomLen/2), New(APIKey)[PrefixLen : PrefixLen+RandomLen]} {
		if got, want := checksumString(s), crc32.ChecksumIEEE([]byte(s)); got != want {
			t.Errorf("checksumString(%q) = %08x, want %08x", s, got, want)
		}
	}
	s := New(AccessToken)
	if n := testing.AllocsPerRun(100, func() { Parse(s) }); n != 0 {
		t.Errorf("Parse allocates %v times", n)
	}
}

func TestRandomBase62(t *testing.T) {
	seen := map[string]bool{}
	counts := map[byte]int{}
	for range 2000 {
		s := RandomBase62(24)
		if len(s) != 24 || seen[s] {
			t.Fatalf("RandomBase62(24) = %q (repeat: %v)", s, seen[s])
		}
		seen[s] = true
		for i := 0; i < len(s); i++ {
			if !isBase62(s[i]) {
				t.Fatalf("%q holds %q", s, s[i])
			}
			counts[s[i]]++
		}
	}
	// 48,000 characters over 62 symbols: ~774 each; every symbol appears
	// and none is far off (a modulo bias would favour the first 8).
	if len(counts) != 62 {
		t.Fatalf("%d distinct characters, want 62", len(counts))
	}
	for c, n := range counts {
		if n < 650 || n > 900 { // ±4.5 standard deviations; the modulo bias would give the first 8 about 937
			t.Errorf("character %q appears %d times, expected about 774", c, n)
		}
	}
}

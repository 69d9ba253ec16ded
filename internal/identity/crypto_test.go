package identity

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// testParams keep argon2id cheap in tests; production uses defaultParams.
var testParams = argonParams{memory: 64, time: 1, threads: 1}

func TestTOTPRFC6238Vectors(t *testing.T) {
	// RFC 6238 Appendix B, SHA1 column.
	secret := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		if got := GenerateTOTP(secret, time.Unix(tc.unix, 0), 8); got != tc.want {
			t.Errorf("T=%d: got %s, want %s", tc.unix, got, tc.want)
		}
	}
}

func TestHOTPRFC4226Vectors(t *testing.T) {
	// RFC 4226 Appendix D.
	secret := []byte("12345678901234567890")
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for i, w := range want {
		if got := hotp(secret, uint64(i), 6); got != w {
			t.Errorf("counter %d: got %s, want %s", i, got, w)
		}
	}
	// Six digits are the last six of the eight-digit code.
	if got := GenerateTOTP(secret, time.Unix(59, 0), 6); got != "287082" {
		t.Errorf("6 digits at 59: got %s", got)
	}
	// Invalid digit counts fall back to 6.
	if got := GenerateTOTP(secret, time.Unix(59, 0), 42); len(got) != 6 {
		t.Errorf("digits 42: got %q", got)
	}
}

func TestMatchTOTPWindow(t *testing.T) {
	secret := []byte("12345678901234567890")
	now := time.Unix(1111111111, 0)
	cur := totpCounter(now)
	for _, d := range []int64{-1, 0, 1} {
		code := hotp(secret, uint64(int64(cur)+d), 6)
		step, ok := matchTOTP(secret, now, 6, code)
		if !ok || step != uint64(int64(cur)+d) {
			t.Errorf("skew %d: ok=%v step=%d", d, ok, step)
		}
	}
	for _, d := range []int64{-2, 2} {
		if _, ok := matchTOTP(secret, now, 6, hotp(secret, uint64(int64(cur)+d), 6)); ok {
			t.Errorf("skew %d accepted", d)
		}
	}
	if _, ok := matchTOTP(secret, now, 6, "12345"); ok {
		t.Error("short code accepted")
	}
	if _, ok := matchTOTP(secret, time.Unix(10, 0), 6, hotp(secret, 0, 6)); !ok {
		t.Error("step 0 near the epoch rejected")
	}
}

func TestOTPAuthURL(t *testing.T) {
	_, b32s := newTOTPSecret()
	if len(b32s) != 32 {
		t.Fatalf("base32 secret length %d, want 32", len(b32s))
	}
	u := otpauthURL("keyward", "alice", b32s, 6)
	for _, want := range []string{"otpauth://totp/keyward:alice?", "secret=" + b32s, "issuer=keyward", "digits=6", "period=30", "algorithm=SHA1"} {
		if !strings.Contains(u, want) {
			t.Errorf("URL %q lacks %q", u, want)
		}
	}
}

func TestPasswordHashFormat(t *testing.T) {
	h := hashPassword("correct horse battery", defaultParams)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q has the wrong prefix", h)
	}
	p, salt, key, err := decodePHC(h)
	if err != nil {
		t.Fatal(err)
	}
	if p != defaultParams || len(salt) != 16 || len(key) != 32 {
		t.Fatalf("decoded %+v, salt %d, key %d", p, len(salt), len(key))
	}
	if hashPassword("x", testParams) == hashPassword("x", testParams) {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	ok, err := verifyPassword("correct horse battery", h)
	if err != nil || !ok {
		t.Fatalf("verify right password: %v %v", ok, err)
	}
	if ok, _ := verifyPassword("correct horse batterz", h); ok {
		t.Fatal("wrong password verified")
	}
}

func TestPasswordParamsReadFromEncoding(t *testing.T) {
	h := hashPassword("a long enough password", testParams)
	if !strings.Contains(h, "$m=64,t=1,p=1$") {
		t.Fatalf("hash %q does not record its parameters", h)
	}
	if ok, err := verifyPassword("a long enough password", h); !ok || err != nil {
		t.Fatalf("verify with the encoded parameters: %v %v", ok, err)
	}
}

func TestDecodePHCRejects(t *testing.T) {
	good := hashPassword("x", testParams)
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	for name, s := range map[string]string{
		"empty":         "",
		"argon2i":       "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"version":       "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"param order":   "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"huge memory":   "$argon2id$v=19$m=4194304,t=1,p=1$" + salt + "$" + key,
		"zero time":     "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"zero threads":  "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"memory<8p":     "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key,
		"leading zero":  "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key,
		"sign":          "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key,
		"short salt":    "$argon2id$v=19$m=64,t=1,p=1$AAAA$" + key,
		"padded salt":   "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key,
		"short key":     "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAA",
		"extra field":   good + "$x",
		"missing field": "$argon2id$v=19$m=64,t=1,p=1$" + salt,
	} {
		if _, _, _, err := decodePHC(s); !errors.Is(err, errBadHash) {
			t.Errorf("%s: err = %v, want errBadHash", name, err)
		}
	}
}

func FuzzDecodePHC(f *testing.F) {
	f.Add(hashPassword("seed", testParams))
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := decodePHC(s)
		if err != nil {
			return
		}
		if p.memory > maxMemory || p.time > maxTime || p.threads > maxThreads || p.threads == 0 || p.time == 0 ||
			p.memory < 8*uint32(p.threads) {
			t.Fatalf("out-of-range parameters accepted: %+v", p)
		}
		if len(salt) < minSalt || len(salt) > maxSalt || len(key) < minKey || len(key) > maxKey {
			t.Fatalf("bad lengths accepted: salt %d key %d", len(salt), len(key))
		}
		// A decoded hash re-encodes to the same string (one encoding).
		if got := encodePHC(p, salt, key); got != s {
			t.Fatalf("re-encoding differs:\n got %q\nwant %q", got, s)
		}
	})
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"refs/heads/main", "refs/heads/main", true},
		{"refs/heads/main", "refs/heads/main2", false},
		{"acme/*", "acme/app", true},
		{"acme/*", "acme/", true},
		{"acme/*", "acmex/app", false},
		{"acme/*", "evil/acme/app", false},
		{"*", "", true},
		{"*", "anything/at/all", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"*.example.com", "x.example.com", true},
		{"*.example.com", "example.com", false},
		{"", "", true},
		{"", "x", false},
		{"[a]", "a", false}, // only * is special
		{"[a]", "[a]", true},
	} {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

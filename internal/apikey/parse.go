package apikey

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// ValidateName checks a key's display name.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameBytes || !utf8.ValidString(name) {
		return fmt.Errorf("%w: name: want 1 to %d bytes of UTF-8", ErrInvalid, MaxNameBytes)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: name %q holds a control character", ErrInvalid, printable(name))
		}
	}
	return nil
}

// NormalizeMeta checks that meta is a JSON object of at most MaxMetaBytes
// and returns it compacted (nil for an empty input, null or {}: a key has
// no metadata or some, never an empty object).
func NormalizeMeta(meta []byte) (json.RawMessage, error) {
	if len(meta) == 0 {
		return nil, nil
	}
	if len(meta) > MaxMetaBytes {
		return nil, fmt.Errorf("%w: meta is %d bytes, the limit is %d", ErrInvalid, len(meta), MaxMetaBytes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(meta, &obj); err != nil {
		return nil, fmt.Errorf("%w: meta must be a JSON object, such as {\"team\":\"x\"}", ErrInvalid)
	}
	if len(obj) == 0 {
		return nil, nil
	}
	// Re-encoding sorts the keys and compacts: one stored form.
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("%w: meta: %v", ErrInvalid, err)
	}
	return out, nil
}

// ParseRefill reads a refill period: "daily", "monthly" (or "day", "month"),
// or "" for none.
func ParseRefill(s string) (string, error) {
	switch strings.ToLower(s) {
	case "":
		return "", nil
	case "daily", "day":
		return RefillDaily, nil
	case "monthly", "month":
		return RefillMonthly, nil
	}
	return "", fmt.Errorf("%w: refill %q: want daily or monthly", ErrInvalid, printable(s))
}

// ParseDuration reads a lifetime: a Go duration ("36h", "90m"), a number
// of days ("90d") or weeks ("2w"), or "" for none.
func ParseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	bad := fmt.Errorf("%w: %s %q: want a duration such as 90d, 12h or 30m", ErrInvalid, field, printable(s))
	if n := len(s); n >= 2 && (s[n-1] == 'd' || s[n-1] == 'w') {
		num := s[:n-1]
		var v int64
		for i := 0; i < len(num); i++ {
			c := num[i]
			if c < '0' || c > '9' || v > 1e6 {
				return 0, bad
			}
			v = v*10 + int64(c-'0')
		}
		if len(num) > 1 && num[0] == '0' {
			return 0, bad
		}
		unit := 24 * time.Hour
		if s[n-1] == 'w' {
			unit *= 7
		}
		d := time.Duration(v) * unit
		if v > int64(MaxTTL/unit)+1 {
			return 0, fmt.Errorf("%w: %s %q is longer than %d days", ErrInvalid, field, printable(s), int(MaxTTL/(24*time.Hour)))
		}
		return d, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	return d, nil
}

// periodStart is the start (UTC) of the refill period holding t.
func periodStart(period string, t time.Time) time.Time {
	t = t.UTC()
	switch period {
	case RefillDaily:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	case RefillMonthly:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Time{}
}

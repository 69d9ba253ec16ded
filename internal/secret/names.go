package secret

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on names, paths and values.
const (
	MaxValueBytes   = 64 << 10 // a secret value
	MaxPathBytes    = 512      // a secret path
	MaxPathDepth    = 16       // segments in a secret path
	MaxSegmentBytes = 128      // one path segment
	MaxNameBytes    = 63       // a project or environment name
	DefaultVersions = 20       // versions kept per secret unless configured
)

// ValidateName checks a project or environment name: lowercase letters,
// digits and '-', starting with a letter or digit.
func ValidateName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s name is empty", ErrInvalid, kind)
	}
	if len(name) > MaxNameBytes {
		return fmt.Errorf("%w: %s name is longer than %d bytes", ErrInvalid, kind, MaxNameBytes)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || (c == '-' && i > 0)
		if !ok {
			return fmt.Errorf("%w: %s name %q: use lowercase letters, digits and '-' (not first)", ErrInvalid, kind, printable(name))
		}
	}
	return nil
}

// ValidatePath checks a slash-separated secret path. Segments hold letters,
// digits, '.', '_' and '-'; "." and ".." and empty segments are refused, so
// a path can never climb out of its environment.
func ValidatePath(path string) error {
	if path == "" {
		return fmt.Errorf("%w: secret path is empty", ErrInvalid)
	}
	if !utf8.ValidString(path) {
		return fmt.Errorf("%w: secret path is not valid UTF-8", ErrInvalid)
	}
	if len(path) > MaxPathBytes {
		return fmt.Errorf("%w: secret path is longer than %d bytes", ErrInvalid, MaxPathBytes)
	}
	segs := strings.Split(path, "/")
	if len(segs) > MaxPathDepth {
		return fmt.Errorf("%w: secret path has more than %d segments", ErrInvalid, MaxPathDepth)
	}
	for _, s := range segs {
		if err := validateSegment(s); err != nil {
			return fmt.Errorf("%w: secret path %q: %v", ErrInvalid, printable(path), err)
		}
	}
	return nil
}

// ValidatePrefix checks a folder prefix for listing: "" (the root) or a path,
// with an optional trailing slash.
func ValidatePrefix(prefix string) (string, error) {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" {
		if prefix != "" && prefix != "/" {
			return "", fmt.Errorf("%w: prefix %q", ErrInvalid, printable(prefix))
		}
		return "", nil
	}
	if err := ValidatePath(p); err != nil {
		return "", err
	}
	return p + "/", nil
}

func validateSegment(s string) error {
	switch s {
	case "":
		return fmt.Errorf("empty segment")
	case ".", "..":
		return fmt.Errorf("segment %q is not allowed", s)
	}
	if len(s) > MaxSegmentBytes {
		return fmt.Errorf("segment longer than %d bytes", MaxSegmentBytes)
	}
	for _, r := range s { // valid UTF-8: ValidatePath checked it
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("character %q is not allowed (use ASCII letters, digits, '.', '_', '-')", r)
		}
	}
	return nil
}

// printable makes a name safe to put in an error message.
func printable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s), "?")
}

// Package redact keeps secrets out of logs and formatted output.
//
// Two layers: Secret is a string type whose every formatting path prints
// [REDACTED] (fmt verbs, slog, JSON, text marshalling), so a secret held in
// that type cannot be logged by accident; and Handler wraps any slog.Handler
// and blanks attributes whose key names a secret (token, password, share, ...)
// and credential-shaped substrings (kw?_ tokens) in free text, as a net for
// values that escaped the type.
//
// Any package may import redact; it imports nothing of keyward's.
package redact

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// Redacted is what every formatting path prints in place of a secret.
const Redacted = "[REDACTED]"

// Secret is a string that must never be printed or logged.
// Use Reveal to get the value where it is really needed.
type Secret struct {
	_ [0]func() // not comparable with ==: compare with crypto/subtle on Reveal()
	v string
}

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the secret value.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

func (Secret) String() string                  { return Redacted }
func (Secret) GoString() string                { return Redacted }
func (Secret) LogValue() slog.Value            { return slog.StringValue(Redacted) }
func (Secret) MarshalJSON() ([]byte, error)    { return []byte(`"` + Redacted + `"`), nil }
func (Secret) MarshalText() ([]byte, error)    { return []byte(Redacted), nil }
func (Secret) Format(f fmt.State, _ rune)      { f.Write([]byte(Redacted)) }
func (s *Secret) UnmarshalText(b []byte) error { s.v = string(b); return nil }

var _ interface{ LogValue() slog.Value } = Secret{}

// sensitiveKeys are attribute-name fragments whose values are always blanked.
var sensitiveKeys = []string{"token", "password", "passwd", "secret", "share", "root_key", "rootkey", "authorization", "cookie", "private", "api_key", "apikey", "credential"}

// SensitiveKey reports whether an attribute named key would carry a secret.
func SensitiveKey(key string) bool {
	k := strings.ToLower(key)
	if k == "token_accessor" || k == "accessor" {
		return false
	}
	for _, s := range sensitiveKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

var credentialRE = regexp.MustCompile(`kw[trkew]_[0-9A-Za-z]{20,}`)

// String blanks keyward credentials found in free text.
func String(s string) string {
	if !strings.Contains(s, "kw") {
		return s
	}
	return credentialRE.ReplaceAllString(s, Redacted)
}

// Handler wraps an slog.Handler, blanking sensitive attributes.
type Handler struct{ next slog.Handler }

// NewHandler returns a redacting handler in front of next.
func NewHandler(next slog.Handler) *Handler { return &Handler{next: next} }

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(attr(a))
		return true
	})
	return h.next.Handle(ctx, nr)
}

func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = attr(a)
	}
	return &Handler{next: h.next.WithAttrs(out)}
}

func (h *Handler) WithGroup(name string) slog.Handler { return &Handler{next: h.next.WithGroup(name)} }

func attr(a slog.Attr) slog.Attr {
	if SensitiveKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = attr(ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, String(err.Error()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

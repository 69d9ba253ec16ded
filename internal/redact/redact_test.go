package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/credential"
)

func TestSecretNeverFormats(t *testing.T) {
	const value = "hunter2-very-secret"
	s := NewSecret(value)
	type wrapper struct {
		S Secret
		P *Secret
	}
	w := wrapper{S: s, P: &s}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-8v"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, w), fmt.Sprintf(verb, &s))
	}
	outs = append(outs, fmt.Sprint(s), fmt.Sprintln(s), s.String(), s.GoString())
	j, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "s", s, "w", w)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "s", s, slog.Any("p", &s))
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(o, value) || strings.Contains(o, fmt.Sprintf("%x", value)) {
			t.Fatalf("secret leaked through formatting: %q", o)
		}
	}
	if !strings.Contains(buf.String(), Redacted) {
		t.Fatalf("log lacks %s: %s", Redacted, buf.String())
	}
	if s.Reveal() != value {
		t.Fatal("Reveal lost the value")
	}
}

func TestHandlerBlanksSensitiveKeysAndCredentials(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil)))
	tok := credential.New(credential.AccessToken)
	log.Info("login with "+tok, "password", "pw-123456", "root_token", tok, "note", "saw "+tok,
		"err", fmt.Errorf("bad %s", tok), slog.Group("g", "client_secret", "cs-999"), "accessor", "acc-1")
	log.With("share", "c2hhcmU=").Info("unseal")
	out := buf.String()
	for _, leak := range []string{"pw-123456", tok, "cs-999", "c2hhcmU="} {
		if strings.Contains(out, leak) {
			t.Fatalf("log holds %q:\n%s", leak, out)
		}
	}
	if !strings.Contains(out, "acc-1") {
		t.Fatalf("non-secret accessor was blanked:\n%s", out)
	}
}

func TestSensitiveKey(t *testing.T) {
	for _, k := range []string{"token", "Authorization", "client_secret", "unseal_share", "root_key", "password"} {
		if !SensitiveKey(k) {
			t.Errorf("SensitiveKey(%q) = false", k)
		}
	}
	for _, k := range []string{"path", "status", "accessor", "request_id"} {
		if SensitiveKey(k) {
			t.Errorf("SensitiveKey(%q) = true", k)
		}
	}
}

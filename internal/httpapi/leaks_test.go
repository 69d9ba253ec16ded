package httpapi

import (
	"encoding/json"
	"testing"
)

// A leak report comes from anyone: whatever its body, parsing never
// panics, accepts at most maxLeaks, and what it accepts is JSON of one of
// the two shapes.
func FuzzLeakReport(f *testing.F) {
	f.Add(`{"credentials": ["kwt_a", "kwk_b"], "source": "https://example.com/x"}`)
	f.Add(`[{"token": "kwt_a", "type": "keyward_token", "url": "u", "source": "content"}]`)
	f.Add(`{"credentials": null}`)
	f.Add(`[]`)
	f.Add(` [ {"token": 1} ] `)
	f.Fuzz(func(t *testing.T, body string) {
		leaks, github, err := parseLeakReport([]byte(body))
		if err != nil {
			return
		}
		if len(leaks) > maxLeaks {
			t.Fatalf("accepted %d leaks", len(leaks))
		}
		if !json.Valid([]byte(body)) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var v any
		json.Unmarshal([]byte(body), &v)
		if _, isArray := v.([]any); isArray != github {
			t.Fatalf("%q read as github=%v", body, github)
		}
	})
}

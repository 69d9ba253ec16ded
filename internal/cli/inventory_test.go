package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The inventory prints each credential's age, rotation, expiry and last
// use coarsely ("-" where its kind records none), sends the filters, and
// refuses bad ones before asking the server.
func TestInventory(t *testing.T) {
	h := newHarness(t)
	h.vars["KEYWARD_TOKEN"] = "kwt_x" // keyward:allow (test fixture)
	now := time.Now().UTC()
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	var queries []string
	h.fake.mux.HandleFunc("GET /v1/inventory", func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		fmt.Fprintf(w, `{"items":[
{"kind":"key","id":"key_1","name":"partner","scope":"shop/prod","owner":"acme","created_at":%q,"expires_at":%q,"last_used_at":%q,"last_used_from":"192.0.2.7","use_tracked":true,"state":"active"},
{"kind":"key","id":"key_2","scope":"shop/prod","owner":"user:ana","created_at":%q,"use_tracked":true,"state":"active"},
{"kind":"secret","id":"shop/prod/db","scope":"shop/prod","rotated_at":%q,"use_tracked":false,"state":"active"},
{"kind":"integration","id":"maps","scope":"https://maps.example.com","secret":"shop/prod/maps-key","created_at":%q,"use_tracked":true,"state":"active"}]}`,
			at(-400*24*time.Hour), at(12*24*time.Hour+time.Hour), at(-3*time.Hour-time.Minute), at(-100*24*time.Hour), at(-200*24*time.Hour), at(-30*time.Minute))
	})
	r := h.must("", "inventory")
	for _, want := range []string{
		"key_1 (partner)", "400d", "in 12d", "3h ago from 192.0.2.7",
		"key_2", "never",
		"shop/prod/db", "200d ago",
		"maps", "https://maps.example.com (shop/prod/maps-key)", "30m",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inventory lacks %q:\n%s", want, r.stdout)
		}
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "KIND") {
		t.Fatalf("table:\n%s", r.stdout)
	}
	if f := strings.Fields(lines[3]); f[len(f)-2] != "-" { // an item whose use is not tracked
		t.Errorf("secret's LAST USED = %q, want -", f[len(f)-2])
	}

	r = h.must("", "inventory", "--kind", "key,integration", "--unused-for", "90d", "--not-rotated-for", "36h", "--expiring-within", "14d", "--inactive", "-o", "json")
	var items []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &items); err != nil || len(items) != 4 {
		t.Fatalf("json = %v %q", err, r.stdout)
	}
	q := queries[len(queries)-1]
	for _, want := range []string{"kind=key%2Cintegration", "unused_for=2160h0m0s", "not_rotated_for=36h0m0s", "expiring_within=336h0m0s", "inactive=true"} {
		if !strings.Contains(q, want) {
			t.Errorf("query %q lacks %q", q, want)
		}
	}
	n := len(queries)
	for _, args := range [][]string{{"inventory", "--kind", "user"}, {"inventory", "--unused-for", "a while"}, {"inventory", "--expiring-within", "-1h"}} {
		if r := h.run("", args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, r.code)
		}
	}
	if len(queries) != n {
		t.Error("a bad flag reached the server")
	}
}

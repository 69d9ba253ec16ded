package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The inventory lists every long-lived credential with its owner, scope,
// dates and last use, and never a value; it filters, refuses bad filters
// with a 400 naming them, and needs read on sys/inventory.
func TestInventory(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	const upKey = "inventory-upstream-key-4c1d" // keyward:allow (test fixture)
	const dbValue = "s3cret-db-value-77"        // keyward:allow (test fixture)
	up := newUpstream(t)
	call(t, "POST", u+"/v1/projects", root, map[string]string{"name": "shop"}, nil)
	for path, v := range map[string]string{"db/password": dbValue, "maps/key": upKey, "ci/old-token": "never-read-value-19"} { // keyward:allow (test fixture)
		if c := call(t, "PUT", u+"/v1/projects/shop/envs/prod/secrets/"+path, root, map[string]string{"value": v}, nil); c != 200 && c != 201 {
			t.Fatalf("put secret %s = %d", path, c)
		}
	}
	if c := call(t, "POST", u+"/v1/integrations", root, map[string]any{"name": "maps", "upstream": up.srv.URL,
		"secret": "shop/prod/maps/key", "inject": "header:Authorization=Bearer {{secret}}", "allow_private": true}, nil); c != 201 {
		t.Fatalf("create integration = %d", c)
	}
	var used, unused struct{ Key, ID string }
	if c := call(t, "POST", u+"/v1/projects/shop/envs/prod/keys", root,
		map[string]any{"name": "partner", "owner": "acme", "scopes": []string{"integrations/maps"}, "ttl": "30d"}, &used); c != 201 {
		t.Fatalf("create key = %d", c)
	}
	if c := call(t, "POST", u+"/v1/projects/shop/envs/prod/keys", root,
		map[string]any{"name": "forgotten", "scopes": []string{"integrations/maps"}}, &unused); c != 201 {
		t.Fatalf("create key = %d", c)
	}
	if c := call(t, "POST", u+"/v1/identities/services", root, map[string]any{"name": "deployer", "policies": []string{"default"}}, nil); c != 201 {
		t.Fatalf("create service = %d", c)
	}
	if c := call(t, "GET", u+"/v1/projects/shop/envs/prod/secrets/db/password", root, nil, nil); c != 200 {
		t.Fatalf("read secret = %d", c)
	}
	if res := gatewayCall(t, u+"/v1/gateway/maps/v1/ping", "Bearer "+used.Key, ""); res.status != 200 {
		t.Fatalf("gateway call with the key = %d", res.status)
	}
	// The call's usage is counted after its answer went out: flush until
	// it is stored.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err := r.node.usage.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := r.node.apikeys.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		seen, err := r.node.usage.LastSeen(t.Context(), "integration", []string{"maps"})
		if err != nil {
			t.Fatal(err)
		}
		if !seen["maps"].IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway call's usage was never stored")
		}
	}

	var inv struct {
		Items []struct {
			Kind, ID, Name, Scope, Owner, Secret, State string
			CreatedAt                                   string `json:"created_at"`
			RotatedAt                                   string `json:"rotated_at"`
			ExpiresAt                                   string `json:"expires_at"`
			LastUsedAt                                  string `json:"last_used_at"`
			LastUsedFrom                                string `json:"last_used_from"`
			UseTracked                                  bool   `json:"use_tracked"`
		}
	}
	req, _ := http.NewRequest("GET", u+"/v1/inventory", nil)
	req.Header.Set("Authorization", "Bearer "+root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if resp.StatusCode != 200 {
		t.Fatalf("inventory = %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, dbValue) || strings.Contains(body, upKey) || strings.Contains(body, used.Key) {
		t.Fatal("the inventory shows a secret value or a key")
	}
	if c := call(t, "GET", u+"/v1/inventory", root, nil, &inv); c != 200 {
		t.Fatal(c)
	}
	got := map[string]int{}
	for i, it := range inv.Items {
		got[it.Kind+" "+it.ID] = i
	}
	var rootTok struct{ Accessor string }
	if c := call(t, "GET", u+"/v1/auth/token/lookup-self", root, nil, &rootTok); c != 200 {
		t.Fatalf("lookup-self = %d", c)
	}
	for _, want := range []string{"token " + rootTok.Accessor, "key " + used.ID, "key " + unused.ID, "service deployer", "secret shop/prod/db/password",
		"secret shop/prod/maps/key", "secret shop/prod/ci/old-token", "integration maps"} {
		if _, ok := got[want]; !ok {
			t.Errorf("inventory lacks %s: %v", want, got)
		}
	}
	if t.Failed() {
		return
	}
	k := inv.Items[got["key "+used.ID]]
	if k.Scope != "shop/prod" || k.Owner != "acme" || k.ExpiresAt == "" || k.LastUsedAt == "" || k.LastUsedFrom == "" || !k.UseTracked || k.State != "active" {
		t.Errorf("used key = %+v", k)
	}
	if k := inv.Items[got["key "+unused.ID]]; k.LastUsedAt != "" || k.Owner == "" {
		t.Errorf("unused key = %+v (want no last use, the creator as owner)", k)
	}
	if tk := inv.Items[got["token "+rootTok.Accessor]]; tk.Owner != "root" || tk.Scope != "root" || tk.LastUsedAt == "" {
		t.Errorf("root token = %+v (the dev root token never expires: long-lived)", tk)
	}
	if in := inv.Items[got["integration maps"]]; in.Secret != "shop/prod/maps/key" || in.LastUsedAt == "" || in.Scope != up.srv.URL {
		t.Errorf("integration = %+v", in)
	}
	if sv := inv.Items[got["service deployer"]]; !sv.UseTracked || sv.LastUsedAt != "" || sv.RotatedAt == "" {
		t.Errorf("service = %+v (never logged in: use tracked, no last use)", sv)
	}
	if s := inv.Items[got["secret shop/prod/db/password"]]; s.RotatedAt == "" || s.CreatedAt == "" || s.Owner != "root" || !s.UseTracked || s.LastUsedAt == "" {
		t.Errorf("secret read once = %+v (want its read as last use)", s)
	}
	if s := inv.Items[got["secret shop/prod/maps/key"]]; s.LastUsedAt == "" {
		t.Errorf("secret an integration injects = %+v (want the gateway call as last use)", s)
	}
	if s := inv.Items[got["secret shop/prod/ci/old-token"]]; !s.UseTracked || s.LastUsedAt != "" {
		t.Errorf("secret never read = %+v (want use tracked, no last use)", s)
	}

	// Filters.
	kinds := func(q string) []string {
		t.Helper()
		var inv struct{ Items []struct{ Kind, ID string } }
		if c := call(t, "GET", u+"/v1/inventory?"+q, root, nil, &inv); c != 200 {
			t.Fatalf("inventory?%s = %d", q, c)
		}
		var out []string
		for _, it := range inv.Items {
			out = append(out, it.Kind+" "+it.ID)
		}
		return out
	}
	if got := kinds("kind=integration,service"); strings.Join(got, ";") != "service deployer;integration maps" {
		t.Errorf("kind filter: %v", got)
	}
	if got := kinds("kind=key&expiring_within=31d"); strings.Join(got, ";") != "key "+used.ID {
		t.Errorf("keys expiring within 31 days: %v", got)
	}
	if got := kinds("kind=key&expiring_within=29d"); len(got) != 0 {
		t.Errorf("keys expiring within 29 days: %v", got)
	}
	if got := kinds("unused_for=1h"); len(got) != 0 {
		t.Errorf("unused for an hour, right after creation: %v", got)
	}
	if got := kinds("not_rotated_for=0s&kind=secret"); len(got) != 3 {
		t.Errorf("secrets: %v", got)
	}
	// Revoked keys show only with inactive=true.
	if c := call(t, "POST", u+"/v1/projects/shop/envs/prod/keys/"+unused.ID+"/revoke", root, nil, nil); c != 200 {
		t.Fatalf("revoke = %d", c)
	}
	if got := kinds("kind=key"); strings.Join(got, ";") != "key "+used.ID {
		t.Errorf("active keys after a revocation: %v", got)
	}
	if got := kinds("kind=key&inactive=true"); len(got) != 2 {
		t.Errorf("keys with inactive ones: %v", got)
	}

	for q, want := range map[string]string{"kind=user": "kind", "unused_for=soon": "unused_for",
		"expiring_within=-1h": "expiring_within", "not_rotated_for=1y": "not_rotated_for", "inactive=yes": "inactive"} {
		if c, out := raw(t, "GET", u+"/v1/inventory?"+q, root, "", ""); c != 400 || !strings.Contains(errMsg(out), want) {
			t.Errorf("inventory?%s = %d %q, want 400 naming %q", q, c, errMsg(out), want)
		}
	}
	var child struct{ Token string }
	call(t, "POST", u+"/v1/auth/token/create", root, map[string]any{"ttl": "5m", "policies": []string{"default"}}, &child)
	if c, _ := raw(t, "GET", u+"/v1/inventory", child.Token, "", ""); c != 403 {
		t.Errorf("inventory with a default token = %d, want 403", c)
	}
}

package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/client"
)

// Device enrollment end to end: an operator makes a code for two devices;
// a device enrolls with it, proving its key; it gets tokens bound to that
// key and uses them with a proof per call; a copied proof, another key or
// a third device get nothing; disabling the device ends its tokens at once.
func TestDeviceEnrollment(t *testing.T) {
	r, root := devNode(t)
	u := r.url
	putPolicy(t, u, root, "name: thermostat\nrules:\n  - resources: [\"projects/iot/envs/prod/secrets/firmware/**\"]\n    allow: [read]\n")
	var made struct {
		Code       string
		Enrollment struct{ ID string }
	}
	if c := call(t, "POST", u+"/v1/devices/enrollments", root, map[string]any{"label": "batch-1", "policies": []string{"thermostat"}, "uses": 2}, &made); c != 201 || !strings.HasPrefix(made.Code, "kwe_") {
		t.Fatalf("enrollment code = %d %+v", c, made)
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	proof := func(k *ecdsa.PrivateKey, method, target, tok string) string {
		return mustProof(t, k, method, target, tok)
	}
	enrollWith := func(code, p, name string) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(map[string]string{"code": code, "name": name})
		req, _ := http.NewRequest("POST", u+"/v1/devices/enroll", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if p != "" {
			req.Header.Set("DPoP", p)
		}
		res := send(t, req)
		return res.status, res.body
	}
	enroll := func(_ *ecdsa.PrivateKey, p, name string) (int, map[string]any) {
		t.Helper()
		return enrollWith(made.Code, p, name)
	}
	tokenFor := func(k *ecdsa.PrivateKey, id string) oauthResp {
		t.Helper()
		return post(t, u+"/v1/oauth/token", url.Values{"grant_type": {"urn:keyward:params:oauth:grant-type:device"}, "device_id": {id}}, "",
			proof(k, "POST", u+"/v1/oauth/token", ""))
	}

	key := newKey()
	first := proof(key, "POST", u+"/v1/devices/enroll", "")
	// A wrong code is refused before the proof is looked at: the proof is
	// not spent, and works with the right code.
	if c, _ := enrollWith("kwe_"+strings.Repeat("A", 46), first, "kitchen"); c != 401 {
		t.Fatalf("a wrong code = %d, want 401", c)
	}
	code, body := enroll(key, first, "kitchen")
	id, _ := body["device_id"].(string)
	if code != 201 || !strings.HasPrefix(id, "dev_") {
		t.Fatalf("enroll = %d %v", code, body)
	}
	if c, b := enroll(key, first, "kitchen"); c != 400 || !strings.Contains(b["error"].(map[string]any)["message"].(string), "replayed") {
		t.Fatalf("the same proof again = %d %v, want 400 replayed", c, b)
	}
	if c, _ := enroll(key, proof(key, "POST", u+"/v1/devices/enroll", ""), "kitchen"); c != 409 {
		t.Fatalf("the same key again = %d, want 409", c)
	}
	if c, _ := enroll(key, "", "kitchen"); c != 400 {
		t.Fatalf("no proof = %d, want 400", c)
	}

	res := tokenFor(key, id)
	tok, _ := res.body["access_token"].(string)
	if res.status != 200 || res.body["token_type"] != "DPoP" || tok == "" {
		t.Fatalf("device token = %d %v", res.status, res.body)
	}
	self := u + "/v1/auth/token/lookup-self"
	if res := withProof(t, "GET", self, "DPoP", tok, proof(key, "GET", self, tok)); res.status != 200 || res.body["principal"] != "device:"+id {
		t.Fatalf("a call with the device token = %d %v", res.status, res.body)
	}
	if res := withProof(t, "GET", self, "Bearer", tok, ""); res.status != 401 {
		t.Fatalf("the token without a proof = %d, want 401", res.status)
	}
	other := newKey()
	if res := tokenFor(other, id); res.status != 400 || res.body["error"] != "invalid_grant" {
		t.Fatalf("a token for the device with another key = %d %v", res.status, res.body)
	}

	// The code was for two devices.
	if c, _ := enroll(other, proof(other, "POST", u+"/v1/devices/enroll", ""), "hall"); c != 201 {
		t.Fatalf("second device = %d", c)
	}
	third := newKey()
	if c, _ := enroll(third, proof(third, "POST", u+"/v1/devices/enroll", ""), "porch"); c != 401 {
		t.Fatalf("third device on a code for two = %d, want 401", c)
	}

	// Disabled: its token stops at once, and it gets no new one.
	if c := call(t, "POST", u+"/v1/devices/"+id+"/disable", root, nil, nil); c != 200 {
		t.Fatalf("disable = %d", c)
	}
	if res := withProof(t, "GET", self, "DPoP", tok, proof(key, "GET", self, tok)); res.status != 401 {
		t.Fatalf("the disabled device's token = %d, want 401", res.status)
	}
	if res := tokenFor(key, id); res.status != 400 {
		t.Fatalf("a token for the disabled device = %d, want 400", res.status)
	}
	var list struct{ Devices []struct{ ID, Name string } }
	if c := call(t, "GET", u+"/v1/devices", root, nil, &list); c != 200 || len(list.Devices) != 2 {
		t.Fatalf("devices = %d %+v", c, list)
	}
	if c := call(t, "GET", u+"/v1/devices/enrollments", root, nil, nil); c != 200 {
		t.Fatalf("enrollments = %d", c)
	}
}

// The Go client does a device's part: enroll with the prover's key, then
// tokens bound to it; the operator's part: codes, listing, disabling.
func TestGoClientDevice(t *testing.T) {
	r, root := devNode(t)
	putPolicy(t, r.url, root, "name: sensor\nrules:\n  - resources: [\"projects/iot/**\"]\n    allow: [read]\n")
	ctx := t.Context()
	admin, _ := client.New(client.Config{Address: r.url, Token: root})
	code, e, err := admin.CreateEnrollment(ctx, "line-3", []string{"sensor"}, 1, "1h")
	if err != nil || e.Remaining != 1 {
		t.Fatalf("CreateEnrollment = %+v, %v", e, err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	prove, _ := client.NewES256Prover(key)
	dev, _ := client.New(client.Config{Address: r.url, DPoP: prove})
	id, err := dev.Enroll(ctx, code, "sensor-17")
	if err != nil {
		t.Fatal(err)
	}
	res, err := dev.DeviceToken(ctx, id)
	if err != nil || res.TokenType != "DPoP" {
		t.Fatalf("DeviceToken = %+v, %v", res, err)
	}
	if info, err := dev.WithToken(res.AccessToken).LookupSelf(ctx); err != nil || info.Principal != "device:"+id {
		t.Fatalf("lookup-self = %+v, %v", info, err)
	}
	// The token is recorded as the device's last one, for the inventory.
	if d, err := admin.GetDevice(ctx, id); err != nil || time.Since(d.LastTokenAt) > time.Minute {
		t.Fatalf("device after a token = %+v, %v", d, err)
	}
	if items, err := admin.Inventory(ctx, client.InventoryFilter{Kinds: []string{"device"}}); err != nil || len(items) != 1 ||
		!items[0].UseTracked || items[0].LastUsedAt.IsZero() {
		t.Fatalf("device inventory = %+v, %v", items, err)
	}
	if _, err := dev.Enroll(ctx, code, "sensor-18"); !client.IsCode(err, client.CodeUnauthenticated) {
		t.Fatalf("a used-up code: %v", err)
	}
	if d, err := admin.SetDeviceDisabled(ctx, id, true); err != nil || d.DisabledAt.IsZero() {
		t.Fatalf("disable = %+v, %v", d, err)
	}
	if _, err := dev.WithToken(res.AccessToken).LookupSelf(ctx); !client.IsCode(err, client.CodeUnauthenticated) {
		t.Fatalf("after disable: %v", err)
	}
	if ds, err := admin.Devices(ctx, 0, ""); err != nil || len(ds) != 1 || ds[0].Name != "sensor-17" {
		t.Fatalf("Devices = %+v, %v", ds, err)
	}
	if err := admin.DeleteDevice(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.GetDevice(ctx, id); !client.IsCode(err, "not_found") {
		t.Fatalf("after delete: %v", err)
	}
}

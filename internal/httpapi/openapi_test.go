package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	routes := append(SysRoutes(nil, NewMetrics(func() bool { return false })), Route{
		Pattern: "GET /v1/projects/{project}/envs/{env}/secrets/{path...}", Action: "read", Summary: "Read a secret."})
	doc := OpenAPI(routes)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &parsed); err != nil || parsed.OpenAPI != "3.1.0" {
		t.Fatalf("document: %v %q", err, parsed.OpenAPI)
	}
	for _, p := range sortedPatterns(routes) {
		method, path, _ := strings.Cut(p, " ")
		path = wildcardRE.ReplaceAllString(path, "{$1}")
		op, ok := parsed.Paths[path][strings.ToLower(method)]
		if !ok {
			t.Errorf("route %s is missing from the OpenAPI document", p)
			continue
		}
		if s, _ := op["summary"].(string); s == "" {
			t.Errorf("route %s has no summary", p)
		}
	}
	op := parsed.Paths["/v1/projects/{project}/envs/{env}/secrets/{path}"]["get"]
	if params, _ := op["parameters"].([]any); len(params) != 3 {
		t.Errorf("path parameters = %v, want 3", op["parameters"])
	}
}

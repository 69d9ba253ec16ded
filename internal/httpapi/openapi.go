package httpapi

import (
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/keyward/keyward/internal/version"
)

var wildcardRE = regexp.MustCompile(`\{([a-zA-Z_][a-zA-Z0-9_]*)(\.\.\.)?\}`)

// OpenAPI builds an OpenAPI 3.1 document from the route table itself, so the
// document cannot drift from the router.
func OpenAPI(routes []Route) map[string]any {
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		method, path, ok := strings.Cut(rt.Pattern, " ")
		if !ok {
			continue
		}
		var params []map[string]any
		for _, m := range wildcardRE.FindAllStringSubmatch(path, -1) {
			desc := "path segment"
			if m[2] != "" {
				desc = "slash-separated path"
			}
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true,
				"description": desc, "schema": map[string]string{"type": "string"}})
		}
		oaPath := wildcardRE.ReplaceAllString(path, "{$1}")
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(method, oaPath),
			"responses": map[string]any{
				"default": map[string]any{"description": "error", "content": map[string]any{
					"application/json": map[string]any{"schema": map[string]string{"$ref": "#/components/schemas/Error"}}}},
				"200": map[string]any{"description": "success"},
			},
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.Open {
			op["security"] = []any{}
		} else {
			op["x-keyward-action"] = rt.Action
		}
		if paths[oaPath] == nil {
			paths[oaPath] = map[string]any{}
		}
		paths[oaPath][strings.ToLower(method)] = op
	}
	return map[string]any{
		"openapi":  "3.1.0",
		"info":     map[string]string{"title": "keyward API", "version": version.String()},
		"paths":    paths,
		"security": []map[string][]string{{"bearer": {}}},
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]string{"type": "http", "scheme": "bearer"}},
			"schemas": map[string]any{"Error": map[string]any{
				"type": "object",
				"properties": map[string]any{"error": map[string]any{"type": "object", "properties": map[string]any{
					"code": map[string]string{"type": "string"}, "message": map[string]string{"type": "string"},
					"request_id": map[string]string{"type": "string"}}}},
			}},
		},
	}
}

func operationID(method, path string) string {
	parts := strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '{' || r == '}' || r == '-' || r == '.' })
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, p := range parts {
		if p == "v1" {
			continue
		}
		b.WriteString(strings.ToUpper(p[:1]) + p[1:])
	}
	return b.String()
}

// OpenAPIRoute serves the document of routes (itself included).
func OpenAPIRoute(routes func() []Route) Route {
	return Route{
		Pattern: "GET /v1/sys/openapi.json", Open: true, WhileSealed: true, NoAudit: true,
		Summary: "The OpenAPI document of this API, generated from the route table.",
		Handle: func(r *http.Request) (int, any, error) {
			return http.StatusOK, OpenAPI(routes()), nil
		},
	}
}

// sortedPatterns lists route patterns, for tests and help.
func sortedPatterns(routes []Route) []string {
	out := make([]string, len(routes))
	for i, r := range routes {
		out[i] = r.Pattern
	}
	sort.Strings(out)
	return out
}

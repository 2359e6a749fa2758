package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// openAPIYAML is the OpenAPI 3.1 document of every route (openapi.yaml).
// openapi_test.go checks it against the routes, their access rules and,
// in the server package, real answers.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON is openAPIYAML as JSON, converted once.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) { return yamlToJSON(openAPIYAML) })

// openAPI serves GET /api/v1/openapi.json: the document as JSON, or as
// the YAML it is written in when the request accepts YAML.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Vary", "Accept")
	if acceptsYAML(r.Header.Get("Accept")) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openAPIYAML)
		return
	}
	doc, err := openAPIJSON()
	if err != nil {
		s.error(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}

// acceptsYAML reports whether an Accept header names a YAML media type.
func acceptsYAML(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml":
			return true
		}
	}
	return false
}

// yamlToJSON converts a YAML document to JSON.
func yamlToJSON(y []byte) ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(y, &doc); err != nil {
		return nil, fmt.Errorf("parse openapi.yaml: %w", err)
	}
	b, err := json.Marshal(jsonValue(doc))
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml as JSON: %w", err)
	}
	return b, nil
}

// jsonValue turns what yaml.v3 decodes into values encoding/json takes:
// mappings with other than string keys (such as 200) get string keys.
func jsonValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonValue(e)
		}
		return v
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = jsonValue(e)
		}
		return out
	case []any:
		for i, e := range v {
			v[i] = jsonValue(e)
		}
		return v
	}
	return v
}

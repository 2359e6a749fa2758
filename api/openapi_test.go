package api

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/release"
)

// openAPIDoc returns the embedded document, decoded from its JSON form.
func openAPIDoc(t *testing.T) map[string]any {
	t.Helper()
	b, err := openAPIJSON()
	if err != nil {
		t.Fatalf("openapi.yaml does not convert to JSON: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// operations returns every operation of doc keyed "METHOD /path", as the
// mux's patterns are written.
func operations(doc map[string]any) map[string]map[string]any {
	ops := map[string]map[string]any{}
	for path, item := range doc["paths"].(map[string]any) {
		for _, m := range httpMethods {
			if op, ok := item.(map[string]any)[m].(map[string]any); ok {
				ops[strings.ToUpper(m)+" "+path] = op
			}
		}
	}
	return ops
}

// allRoutes is every pattern a Server with each optional part registers.
func allRoutes() []string {
	s := &Server{
		Ledger: struct{ Ledger }{}, Builds: struct{ Builds }{}, Envs: struct{ Environments }{},
		Deployments: struct{ DeploymentLedger }{}, Releases: struct{ Releases }{}, Tokens: struct{ Tokens }{},
		Dora: struct{ Dora }{}, Hooks: http.NotFoundHandler(), Logger: slog.New(slog.DiscardHandler),
	}
	return s.routes().patterns
}

// TestOpenAPIDocumentParses: the document converts to JSON, is OpenAPI
// 3.1, every $ref in it resolves, every component schema is used, and
// every object schema refuses undocumented properties (so that the server
// tests catch a field the document lacks).
func TestOpenAPIDocumentParses(t *testing.T) {
	doc := openAPIDoc(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	refs := map[string]bool{}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"]; ok {
				s, _ := ref.(string)
				if _, err := resolveRef(doc, s); err != nil {
					t.Errorf("%s: $ref %q: %v", at, ref, err)
				}
				refs[s] = true
			}
			for k, e := range v {
				walk(e, at+"/"+k)
			}
		case []any:
			for i, e := range v {
				walk(e, at+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(doc, "#")
	if len(refs) == 0 {
		t.Fatal("the document has no $ref at all")
	}
	components := doc["components"].(map[string]any)
	for _, kind := range []string{"schemas", "responses", "parameters"} {
		for name, s := range components[kind].(map[string]any) {
			ref := "#/components/" + kind + "/" + name
			if !refs[ref] {
				t.Errorf("%s is never used", ref)
			}
			if kind != "schemas" {
				continue
			}
			schema := s.(map[string]any)
			if schema["type"] == "object" && schema["properties"] != nil && schema["additionalProperties"] != false {
				t.Errorf("schema %s lacks additionalProperties: false", name)
			}
		}
	}
	// Schemas use only the keywords the server test's validator checks
	// (a flow mapping's unquoted comma makes a new key, for one).
	var checkSchema func(v any, at string)
	checkSchema = func(v any, at string) {
		s, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: the schema is not an object", at)
			return
		}
		for k, e := range s {
			switch k {
			case "description", "default", "title", "examples", "$ref", "type", "enum", "const", "required",
				"additionalProperties", "format", "pattern", "minimum", "maximum":
			case "properties":
				for name, p := range e.(map[string]any) {
					checkSchema(p, at+"/properties/"+name)
				}
			case "items":
				checkSchema(e, at+"/items")
			default:
				t.Errorf("%s: keyword %q is not one the tests check", at, k)
			}
		}
	}
	var findSchemas func(v any, at string)
	findSchemas = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if k == "schema" {
					checkSchema(e, at+"/schema")
				} else {
					findSchemas(e, at+"/"+k)
				}
			}
		case []any:
			for i, e := range v {
				findSchemas(e, at+"/"+strconv.Itoa(i))
			}
		}
	}
	findSchemas(doc["paths"], "#/paths")
	findSchemas(components["parameters"], "#/components/parameters")
	for name, s := range components["schemas"].(map[string]any) {
		checkSchema(s, "#/components/schemas/"+name)
	}

	ids := map[string]string{}
	for key, op := range operations(doc) {
		id, _ := op["operationId"].(string)
		if id == "" {
			t.Errorf("%s has no operationId", key)
		} else if other, dup := ids[id]; dup {
			t.Errorf("%s and %s share operationId %s", key, other, id)
		}
		ids[id] = key
	}
	// A broken document is an error, not a panic.
	if _, err := yamlToJSON([]byte("paths: [unclosed")); err == nil {
		t.Error("yamlToJSON(broken YAML) = nil error")
	}
}

// resolveRef follows a local JSON pointer (#/a/b) in doc.
func resolveRef(doc map[string]any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("not a local reference")
	}
	var cur any = doc
	for part := range strings.SplitSeq(rest, "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q is not inside an object", part)
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("no %q", part)
		}
	}
	return cur, nil
}

// TestOpenAPIRoutes: the document's operations are exactly the routes
// the server registers, and each path parameter is declared.
func TestOpenAPIRoutes(t *testing.T) {
	doc := openAPIDoc(t)
	ops := operations(doc)
	var methodless []string
	routes := map[string]bool{}
	for _, p := range allRoutes() {
		if !strings.Contains(p, " ") {
			methodless = append(methodless, p) // prefixes: the JSON 404 and webhooks
			continue
		}
		routes[p] = true
	}
	slices.Sort(methodless)
	if want := []string{"/api/", "/hooks/"}; !slices.Equal(methodless, want) {
		t.Errorf("routes without a method = %q, want %q (a new one needs a method, or a place in this list and the document)", methodless, want)
	}
	var undocumented, unrouted []string
	for p := range routes {
		if ops[p] == nil {
			undocumented = append(undocumented, p)
		}
	}
	for p := range ops {
		if !routes[p] {
			unrouted = append(unrouted, p)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(unrouted)
	if len(undocumented) > 0 {
		t.Errorf("routes missing from api/openapi.yaml: %q", undocumented)
	}
	if len(unrouted) > 0 {
		t.Errorf("api/openapi.yaml documents operations no route serves: %q", unrouted)
	}

	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	for key, op := range ops {
		path := key[strings.IndexByte(key, ' ')+1:]
		var inPath []string
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			inPath = append(inPath, m[1])
		}
		var declared []string
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			pm := p.(map[string]any)
			if ref, ok := pm["$ref"].(string); ok {
				r, err := resolveRef(doc, ref)
				if err != nil {
					t.Fatal(err)
				}
				pm = r.(map[string]any)
			}
			if pm["in"] == "path" {
				declared = append(declared, pm["name"].(string))
				if pm["required"] != true {
					t.Errorf("%s: path parameter %s is not required", key, pm["name"])
				}
			}
		}
		slices.Sort(inPath)
		slices.Sort(declared)
		if !slices.Equal(inPath, declared) {
			t.Errorf("%s declares path parameters %q, want %q", key, declared, inPath)
		}
	}
}

// roleName is how the document writes an access rule in x-ferry-role.
func roleName(a access) string {
	switch {
	case a.public:
		return "public"
	case a.perEnv:
		return "environment"
	}
	return string(a.need)
}

// TestOpenAPIRoles: each operation's x-ferry-role, security and
// description say what access.go's table enforces, and it documents the
// refusals that follow (401 without a token, 403 below its role).
func TestOpenAPIRoles(t *testing.T) {
	doc := openAPIDoc(t)
	for key, op := range operations(doc) {
		a := accessOf(key)
		want := roleName(a)
		if got := op["x-ferry-role"]; got != want {
			t.Errorf("%s: x-ferry-role = %v, want %s (access.go)", key, got, want)
		}
		if desc, _ := op["description"].(string); !strings.Contains(desc, "Role: "+want) {
			t.Errorf("%s: description does not say %q", key, "Role: "+want)
		}
		security, set := op["security"].([]any)
		if a.public != (set && len(security) == 0) {
			t.Errorf("%s: security = %v, want [] exactly when the route is public (it is public: %v)", key, op["security"], a.public)
		}
		responses := op["responses"].(map[string]any)
		if _, ok := responses["401"]; ok == a.public {
			t.Errorf("%s: documents 401: %v, want %v", key, ok, !a.public)
		}
		if _, ok := responses["403"]; ok != (!a.public && a.need != ferry.RoleViewer) {
			t.Errorf("%s: documents 403: %v, want %v (it needs %s)", key, ok, !ok, want)
		}
	}
}

// TestOpenAPIErrors: the error schema's codes are ferry's, and each error
// status an operation documents is the status of one of them, with the
// shared response of that status.
func TestOpenAPIErrors(t *testing.T) {
	doc := openAPIDoc(t)
	codes := []string{ferry.ECONFLICT, ferry.EINTERNAL, ferry.EINVALID, ferry.ENOTFOUND, ferry.EUNAUTHORIZED, ferry.EFORBIDDEN, ferry.EUNAVAILABLE}
	errSchema := doc["components"].(map[string]any)["schemas"].(map[string]any)["Error"].(map[string]any)
	var enum []string
	for _, c := range errSchema["properties"].(map[string]any)["code"].(map[string]any)["enum"].([]any) {
		enum = append(enum, c.(string))
	}
	slices.Sort(codes)
	slices.Sort(enum)
	if !slices.Equal(enum, codes) {
		t.Errorf("Error.code enum = %q, want ferry's codes %q", enum, codes)
	}
	responseOf := map[int]string{}
	names := map[int]string{400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 500: "Internal", 503: "Unavailable"}
	for _, c := range codes {
		st := ferry.HTTPStatus(ferry.Errorf(c, "x"))
		if names[st] == "" {
			t.Errorf("code %s maps to %d, which has no shared response in this test", c, st)
		}
		responseOf[st] = "#/components/responses/" + names[st]
	}
	for key, op := range operations(doc) {
		for st, r := range op["responses"].(map[string]any) {
			n, err := strconv.Atoi(st)
			if err != nil {
				t.Errorf("%s: response %q is not a status", key, st)
				continue
			}
			if n < 400 {
				continue
			}
			ref, _ := r.(map[string]any)["$ref"].(string)
			if want := responseOf[n]; ref != want {
				t.Errorf("%s: response %d = %v, want $ref %q (no error code maps to %d when that is empty)", key, n, r, want, n)
			}
		}
	}
}

// goTypes is the Go type behind each component schema; noGoType lists the
// schemas without one (enums of named strings, and maps).
var goTypes = map[string]reflect.Type{
	"Error":             reflect.TypeFor[ErrorBody](),
	"Build":             reflect.TypeFor[ferry.Build](),
	"Step":              reflect.TypeFor[ferry.Step](),
	"LogLine":           reflect.TypeFor[ferry.LogLine](),
	"LogRecord":         reflect.TypeFor[LogRecord](),
	"Event":             reflect.TypeFor[ferry.Event](),
	"Deployment":        reflect.TypeFor[ferry.Deployment](),
	"Lock":              reflect.TypeFor[ferry.Lock](),
	"Quarantine":        reflect.TypeFor[ferry.Quarantine](),
	"Token":             reflect.TypeFor[ferry.Token](),
	"EnvStatus":         reflect.TypeFor[controller.EnvStatus](),
	"Replicas":          reflect.TypeFor[controller.Replicas](),
	"Replica":           reflect.TypeFor[ferry.Replica](),
	"Drift":             reflect.TypeFor[controller.Drift](),
	"Status":            reflect.TypeFor[StatusBody](),
	"Side":              reflect.TypeFor[release.Side](),
	"Change":            reflect.TypeFor[release.Change](),
	"Comparison":        reflect.TypeFor[release.Comparison](),
	"KnownRelease":      reflect.TypeFor[release.Known](),
	"ReleaseList":       reflect.TypeFor[ReleaseList](),
	"DoraReport":        reflect.TypeFor[dora.Report](),
	"BuildList":         reflect.TypeFor[BuildList](),
	"EventList":         reflect.TypeFor[EventList](),
	"DeploymentList":    reflect.TypeFor[DeploymentList](),
	"TokenList":         reflect.TypeFor[TokenList](),
	"DoraBody":          reflect.TypeFor[DoraBody](),
	"TriggerRequest":    reflect.TypeFor[TriggerRequest](),
	"TriggerResponse":   reflect.TypeFor[TriggerResponse](),
	"CancelRequest":     reflect.TypeFor[CancelRequest](),
	"ScaleRequest":      reflect.TypeFor[ScaleRequest](),
	"PromoteRequest":    reflect.TypeFor[PromoteRequest](),
	"RollbackRequest":   reflect.TypeFor[RollbackRequest](),
	"ReasonRequest":     reflect.TypeFor[ReasonRequest](),
	"QuarantineRequest": reflect.TypeFor[QuarantineRequest](),
	"TokenRequest":      reflect.TypeFor[TokenRequest](),
	"NewToken":          reflect.TypeFor[NewToken](),
	"RevokeRequest":     reflect.TypeFor[RevokeRequest](),
}

var noGoType = []string{"Health", "Version", "BuildState", "StepState", "DeploymentKind", "DeploymentState", "Role"}

// TestOpenAPISchemasMatchGoTypes: each object schema has exactly the JSON
// fields of its Go type, with matching types; a nested struct is the
// schema of its type; and for answers (not requests), the required
// properties are exactly the fields always written (no omitempty or
// omitzero). The server tests see real answers; this sees the fields
// an answer leaves out.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := openAPIDoc(t)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	schemaOf := map[reflect.Type]string{}
	for name, typ := range goTypes {
		schemaOf[typ] = name
	}
	for name := range schemas {
		if goTypes[name] == nil && !slices.Contains(noGoType, name) {
			t.Errorf("schema %s has no Go type in goTypes (openapi_test.go)", name)
		}
	}
	timeType := reflect.TypeFor[time.Time]()
	// checkType compares one value's Go type with its schema.
	var checkType func(at string, typ reflect.Type, s map[string]any)
	checkType = func(at string, typ reflect.Type, s map[string]any) {
		if ref, ok := s["$ref"].(string); ok {
			target, err := resolveRef(doc, ref)
			if err != nil {
				t.Errorf("%s: %v", at, err)
				return
			}
			for typ.Kind() == reflect.Pointer {
				typ = typ.Elem()
			}
			if typ.Kind() == reflect.Struct && typ != timeType {
				if want := "#/components/schemas/" + schemaOf[typ]; ref != want {
					t.Errorf("%s: $ref %s, want %s (Go type %s)", at, ref, want, typ)
				}
				return
			}
			s = target.(map[string]any)
		}
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		want := ""
		switch {
		case typ == timeType:
			want = "string"
			if s["format"] != "date-time" {
				t.Errorf("%s: a time.Time without format: date-time", at)
			}
		case typ.Kind() == reflect.String:
			want = "string"
		case typ.Kind() == reflect.Bool:
			want = "boolean"
		case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
			want = "integer"
		case typ.Kind() == reflect.Float32 || typ.Kind() == reflect.Float64:
			want = "number"
		case typ.Kind() == reflect.Slice:
			want = "array"
			items, ok := s["items"].(map[string]any)
			if !ok {
				t.Errorf("%s: an array without items", at)
			} else {
				checkType(at+"[]", typ.Elem(), items)
			}
		case typ.Kind() == reflect.Struct:
			t.Errorf("%s: Go struct %s is described inline; use $ref to its schema", at, typ)
			return
		default:
			t.Errorf("%s: Go kind %s is not handled by this test", at, typ.Kind())
			return
		}
		if s["type"] != want {
			t.Errorf("%s: type %v, want %s (Go type %s)", at, s["type"], want, typ)
		}
	}
	for name, typ := range goTypes {
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("goTypes names schema %s, which the document lacks", name)
			continue
		}
		props, _ := s["properties"].(map[string]any)
		var required []string
		req, _ := s["required"].([]any)
		for _, r := range req {
			required = append(required, r.(string))
		}
		isRequest := strings.HasSuffix(name, "Request")
		var alwaysWritten []string
		fields := map[string]bool{}
		for f := range typ.Fields() {
			tag := f.Tag.Get("json")
			if !f.IsExported() || tag == "-" {
				continue
			}
			jsonName, opts, _ := strings.Cut(tag, ",")
			if jsonName == "" {
				jsonName = f.Name
			}
			fields[jsonName] = true
			if !strings.Contains(","+opts+",", ",omitempty,") && !strings.Contains(","+opts+",", ",omitzero,") {
				alwaysWritten = append(alwaysWritten, jsonName)
			}
			ps, ok := props[jsonName].(map[string]any)
			if !ok {
				t.Errorf("%s: Go field %s.%s (JSON %q) is not documented", name, typ, f.Name, jsonName)
				continue
			}
			checkType(name+"."+jsonName, f.Type, ps)
		}
		for p := range props {
			if !fields[p] {
				t.Errorf("%s documents property %q, which %s does not have", name, p, typ)
			}
		}
		slices.Sort(required)
		slices.Sort(alwaysWritten)
		if isRequest {
			for _, r := range required {
				if !fields[r] {
					t.Errorf("%s requires %q, which %s does not have", name, r, typ)
				}
			}
		} else if !slices.Equal(required, alwaysWritten) {
			t.Errorf("%s: required = %q, want the fields always written %q", name, required, alwaysWritten)
		}
	}
}

// TestOpenAPIServed: the document is served without a token, as JSON by
// default and as the YAML it is written in on request, while the routes
// it describes still need one.
func TestOpenAPIServed(t *testing.T) {
	ta := newTestAPI(t, devAndProd)
	get := func(path, accept string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", ta.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	resp, body := get("/api/v1/openapi.json", "")
	want, _ := openAPIJSON()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(body) != string(want) {
		t.Errorf("GET /api/v1/openapi.json without a token = %d %s, %d bytes; want 200 application/json with the document", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil || doc["paths"] == nil {
		t.Errorf("the served document is not JSON with paths: %v", err)
	}
	resp, body = get("/api/v1/openapi.json", "application/yaml, */*;q=0.5")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" || string(body) != string(openAPIYAML) {
		t.Errorf("GET /api/v1/openapi.json accepting YAML = %d %s; want 200 application/yaml with openapi.yaml", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, path := range []string{"/api/v1/builds", "/api/v1/openapi.json/x", "/api/v1/openapi.yaml"} {
		if resp, body := get(path, ""); resp.StatusCode != 401 {
			t.Errorf("GET %s without a token = %d %s, want 401", path, resp.StatusCode, body)
		}
	}
	if status, body := ta.do(t, "", "POST", "/api/v1/openapi.json", ""); status != 401 {
		t.Errorf("POST /api/v1/openapi.json without a token = %d %s, want 401 (only GET is open)", status, body)
	}
}

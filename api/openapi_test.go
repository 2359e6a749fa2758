package api

import (
	"encoding/json"
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

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/release"
)

// loadOpenAPI loads an OpenAPI document with kin-openapi and validates
// it: its structure, every $ref, every schema, default and example.
func loadOpenAPI(t *testing.T, data []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("load the OpenAPI document: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	return doc
}

// openAPIDoc is the embedded document, loaded and validated.
func openAPIDoc(t *testing.T) *openapi3.T {
	t.Helper()
	return loadOpenAPI(t, openAPIYAML)
}

// operations returns every operation of doc keyed "METHOD /path", as the
// mux's patterns are written.
func operations(doc *openapi3.T) map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op
		}
	}
	return ops
}

// allRoutes is every pattern a Server with each optional part registers.
func allRoutes() []string {
	s := &Server{
		Ledger: struct{ Ledger }{}, Builds: struct{ Builds }{}, Envs: struct{ Environments }{},
		Deployments: struct{ DeploymentLedger }{}, Releases: struct{ Releases }{}, Actions: struct{ ActionQueue }{}, Approvals: struct{ Approvals }{}, Canaries: struct{ Canaries }{}, Notifications: struct{ Outbox }{}, Tokens: struct{ Tokens }{},
		Dora: struct{ Dora }{}, Hooks: http.NotFoundHandler(), Logger: slog.New(slog.DiscardHandler),
	}
	return s.routes().patterns
}

// TestOpenAPIDocumentParses: the document, as written and as served
// (JSON), is a valid OpenAPI 3.1 document to kin-openapi; every component
// is used; every object schema refuses undocumented properties (so that
// the server tests catch a field the document lacks); and every operation
// has an operationId of its own.
func TestOpenAPIDocumentParses(t *testing.T) {
	doc := openAPIDoc(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	served, err := openAPIJSON()
	if err != nil {
		t.Fatalf("openapi.yaml does not convert to JSON: %v", err)
	}
	loadOpenAPI(t, served)

	var raw any
	if err := json.Unmarshal(served, &raw); err != nil {
		t.Fatal(err)
	}
	refs := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				refs[ref] = true
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(raw)
	if len(refs) == 0 {
		t.Fatal("the document has no $ref at all")
	}
	var components []string
	for name := range doc.Components.Schemas {
		components = append(components, "#/components/schemas/"+name)
	}
	for name := range doc.Components.Responses {
		if !slices.Contains(unroutedResponses, name) {
			components = append(components, "#/components/responses/"+name)
		}
	}
	for name := range doc.Components.Parameters {
		components = append(components, "#/components/parameters/"+name)
	}
	for _, ref := range components {
		if !refs[ref] {
			t.Errorf("%s is never used", ref)
		}
	}
	for _, name := range unroutedResponses {
		if doc.Components.Responses[name] == nil {
			t.Errorf("the document lacks the response %s (for requests no operation serves)", name)
		}
	}
	for name, s := range doc.Components.Schemas {
		ap := s.Value.AdditionalProperties.Has
		if s.Value.Type.Is("object") && len(s.Value.Properties) > 0 && (ap == nil || *ap) {
			t.Errorf("schema %s lacks additionalProperties: false", name)
		}
	}

	ids := map[string]string{}
	for key, op := range operations(doc) {
		if op.OperationID == "" {
			t.Errorf("%s has no operationId", key)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s and %s share operationId %s", key, other, op.OperationID)
		}
		ids[op.OperationID] = key
	}
	// A broken document is an error, not a panic.
	if _, err := yamlToJSON([]byte("paths: [unclosed")); err == nil {
		t.Error("yamlToJSON(broken YAML) = nil error")
	}
}

// unroutedResponses are the shared responses of requests that no
// operation serves, so that no operation refers to them; the server's
// tests check real answers against them.
var unroutedResponses = []string{"MethodNotAllowed"}

// TestOpenAPIRoutes: the document's operations are exactly the routes
// the server registers, and each path parameter is declared.
func TestOpenAPIRoutes(t *testing.T) {
	ops := operations(openAPIDoc(t))
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
		for _, p := range op.Parameters {
			if p.Value.In == openapi3.ParameterInPath {
				declared = append(declared, p.Value.Name)
				if !p.Value.Required {
					t.Errorf("%s: path parameter %s is not required", key, p.Value.Name)
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
	for key, op := range operations(openAPIDoc(t)) {
		a := accessOf(key)
		want := roleName(a)
		if got := op.Extensions["x-ferry-role"]; got != want {
			t.Errorf("%s: x-ferry-role = %v, want %s (access.go)", key, got, want)
		}
		if !strings.Contains(op.Description, "Role: "+want) {
			t.Errorf("%s: description does not say %q", key, "Role: "+want)
		}
		if open := op.Security != nil && len(*op.Security) == 0; a.public != open {
			t.Errorf("%s: security = %v, want [] exactly when the route is public (it is public: %v)", key, op.Security, a.public)
		}
		if ok := op.Responses.Value("401") != nil; ok == a.public {
			t.Errorf("%s: documents 401: %v, want %v", key, ok, !a.public)
		}
		if ok := op.Responses.Value("403") != nil; ok != (!a.public && a.need != ferry.RoleViewer) {
			t.Errorf("%s: documents 403: %v, want %v (it needs %s)", key, ok, !ok, want)
		}
	}
}

// TestOpenAPIErrors: the error schema's codes are ferry's, and each error
// status an operation documents is the status of one of them, with the
// shared response of that status.
func TestOpenAPIErrors(t *testing.T) {
	doc := openAPIDoc(t)
	codes := []string{ferry.ECONFLICT, ferry.EINTERNAL, ferry.EINVALID, ferry.ENOTFOUND, ferry.EUNAUTHORIZED, ferry.EFORBIDDEN, ferry.EUNAVAILABLE, ferry.EMETHOD, ferry.ETOOLARGE}
	var enum []string
	for _, c := range doc.Components.Schemas["Error"].Value.Properties["code"].Value.Enum {
		enum = append(enum, c.(string))
	}
	slices.Sort(codes)
	slices.Sort(enum)
	if !slices.Equal(enum, codes) {
		t.Errorf("Error.code enum = %q, want ferry's codes %q", enum, codes)
	}
	responseOf := map[int]string{}
	names := map[int]string{400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
		409: "Conflict", 413: "TooLarge", 500: "Internal", 503: "Unavailable"}
	for _, c := range codes {
		st := ferry.HTTPStatus(ferry.Errorf(c, "x"))
		if names[st] == "" {
			t.Errorf("code %s maps to %d, which has no shared response in this test", c, st)
		}
		responseOf[st] = "#/components/responses/" + names[st]
	}
	for key, op := range operations(doc) {
		// A body is decoded strictly (400) and within a limit (413); no
		// operation answers 405, which is for the methods a path lacks.
		hasBody := op.RequestBody != nil
		for st, want := range map[string]bool{"400": hasBody, "413": hasBody, "405": false} {
			if got := op.Responses.Value(st) != nil; got != want && (want || st != "400") {
				t.Errorf("%s: documents %s: %v, want %v (it has a request body: %v)", key, st, got, want, hasBody)
			}
		}
		for st, r := range op.Responses.Map() {
			n, err := strconv.Atoi(st)
			if err != nil {
				t.Errorf("%s: response %q is not a status", key, st)
				continue
			}
			if n < 400 {
				continue
			}
			if want := responseOf[n]; r.Ref != want {
				t.Errorf("%s: response %d = $ref %q, want $ref %q (no error code maps to %d when that is empty)", key, n, r.Ref, want, n)
			}
		}
	}
}

// goTypes is the Go type behind each component schema; noGoType lists the
// schemas without one (enums of named strings, and maps).
var goTypes = map[string]reflect.Type{
	"Error":             reflect.TypeFor[ErrorBody](),
	"CanaryBody":        reflect.TypeFor[CanaryBody](),
	"CanaryRun":         reflect.TypeFor[ferry.CanaryRun](),
	"CanaryTrack":       reflect.TypeFor[CanaryTrack](),
	"CanaryVerdict":     reflect.TypeFor[CanaryVerdict](),
	"Build":             reflect.TypeFor[ferry.Build](),
	"Step":              reflect.TypeFor[ferry.Step](),
	"LogLine":           reflect.TypeFor[ferry.LogLine](),
	"LogRecord":         reflect.TypeFor[LogRecord](),
	"Event":             reflect.TypeFor[ferry.Event](),
	"Deployment":        reflect.TypeFor[ferry.Deployment](),
	"Lock":              reflect.TypeFor[ferry.Lock](),
	"Alert":             reflect.TypeFor[ferry.Alert](),
	"Quarantine":        reflect.TypeFor[ferry.Quarantine](),
	"Token":             reflect.TypeFor[ferry.Token](),
	"EnvStatus":         reflect.TypeFor[EnvStatus](),
	"Replicas":          reflect.TypeFor[Replicas](),
	"Replica":           reflect.TypeFor[ferry.Replica](),
	"Exit":              reflect.TypeFor[ferry.Exit](),
	"Drift":             reflect.TypeFor[Drift](),
	"Leader":            reflect.TypeFor[Leader](),
	"Status":            reflect.TypeFor[StatusBody](),
	"Side":              reflect.TypeFor[release.Side](),
	"Change":            reflect.TypeFor[release.Change](),
	"Comparison":        reflect.TypeFor[release.Comparison](),
	"KnownRelease":      reflect.TypeFor[release.Known](),
	"ReleaseList":       reflect.TypeFor[ReleaseList](),
	"PushCheckRequest":  reflect.TypeFor[PushCheckRequest](),
	"PushCheck":         reflect.TypeFor[PushCheck](),
	"PushUpdate":        reflect.TypeFor[release.PushUpdate](),
	"Verdict":           reflect.TypeFor[release.Verdict](),
	"MoveFacts":         reflect.TypeFor[release.MoveFacts](),
	"TagFacts":          reflect.TypeFor[release.TagFacts](),
	"DoraReport":        reflect.TypeFor[dora.Report](),
	"BuildList":         reflect.TypeFor[BuildList](),
	"EventList":         reflect.TypeFor[EventList](),
	"DeploymentList":    reflect.TypeFor[DeploymentList](),
	"Action":            reflect.TypeFor[ferry.Action](),
	"ActionBody":        reflect.TypeFor[ActionBody](),
	"ActionLinks":       reflect.TypeFor[ActionLinks](),
	"ActionList":        reflect.TypeFor[ActionList](),
	"ReleaseRequest":    reflect.TypeFor[ferry.ReleaseRequest](),
	"Approver":          reflect.TypeFor[ferry.Approver](),
	"RequestBody":       reflect.TypeFor[RequestBody](),
	"RequestLinks":      reflect.TypeFor[RequestLinks](),
	"RequestList":       reflect.TypeFor[RequestList](),
	"Notification":      reflect.TypeFor[ferry.Notification](),
	"NotificationList":  reflect.TypeFor[NotificationList](),
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

var noGoType = []string{"Health", "Version", "BuildState", "StepState", "DeploymentKind", "DeploymentState", "ActionKind", "ActionState", "RequestState", "NotificationState", "Role"}

// TestOpenAPISchemasMatchGoTypes: each object schema has exactly the JSON
// fields of its Go type, with matching types; a nested struct is the
// schema of its type; and for answers (not requests), the required
// properties are exactly the fields always written (no omitempty or
// omitzero). The server tests see real answers; this sees the fields
// an answer leaves out.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	schemas := openAPIDoc(t).Components.Schemas
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
	var checkType func(at string, typ reflect.Type, sr *openapi3.SchemaRef)
	checkType = func(at string, typ reflect.Type, sr *openapi3.SchemaRef) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if sr.Ref != "" && typ.Kind() == reflect.Struct && typ != timeType {
			if want := "#/components/schemas/" + schemaOf[typ]; sr.Ref != want {
				t.Errorf("%s: $ref %s, want %s (Go type %s)", at, sr.Ref, want, typ)
			}
			return
		}
		s := sr.Value // a $ref's target, resolved by the loader
		want := ""
		switch {
		case typ == timeType:
			want = "string"
			if s.Format != "date-time" {
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
			if s.Items == nil {
				t.Errorf("%s: an array without items", at)
			} else {
				checkType(at+"[]", typ.Elem(), s.Items)
			}
		case typ.Kind() == reflect.Struct:
			t.Errorf("%s: Go struct %s is described inline; use $ref to its schema", at, typ)
			return
		default:
			t.Errorf("%s: Go kind %s is not handled by this test", at, typ.Kind())
			return
		}
		if !s.Type.Is(want) {
			t.Errorf("%s: type %v, want %s (Go type %s)", at, s.Type.Slice(), want, typ)
		}
	}
	for name, typ := range goTypes {
		sr, ok := schemas[name]
		if !ok {
			t.Errorf("goTypes names schema %s, which the document lacks", name)
			continue
		}
		props := sr.Value.Properties
		required := slices.Clone(sr.Value.Required)
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
			ps, ok := props[jsonName]
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

package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// TestOpenAPI checks api/openapi.yaml, as the server serves it, against a
// real ferry: dev built from master, prod promoted from dev. It makes every
// list non-empty (builds, a canceled one, deployments of every kind but
// auto-rollback, a lock, a quarantine, tokens), then calls every operation
// of the document and validates each answer — its status must be one the
// operation documents, its Content-Type one of that response's, its body
// valid against that response's schema, where every object schema refuses
// undocumented properties — and each request body it sends against the
// operation's request schema. Errors of both classes (4xx, and 503 once
// the repository is gone) are validated against the error schema. Any
// operation of the document left uncalled fails the test.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	hold := newGate(t) // backstop for the build that blocks until canceled
	runtime := `runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`
	// A commit that holds a file named block builds until canceled.
	yaml := withTest(tinyConfig(repo.Dir, t.TempDir(), ""), fmt.Sprintf(`while [ -f block ] && [ ! -f %s ]; do sleep 0.05; done`, hold.path))
	yaml = strings.Replace(yaml, "runtime: { local: { listen: 127.0.0.1:0 } }", runtime, 1) + "  prod:\n    from: dev\n    " + runtime + "\n"
	s := start(t, yaml, Options{})
	t.Cleanup(func() { hold.release(t) }) // before the server closes
	ctx := context.Background()

	c := &apiCheck{t: t, base: s.URL(), covered: map[string]bool{}}
	c.doc = c.fetchDocument()
	admin := tokenFor(t, s, ferry.RoleAdmin)
	viewer := tokenFor(t, s, ferry.RoleViewer)
	cl := tokenClient(t, s, admin) // to wait for deployments

	// A: the initial import, built and running in dev, then released to prod.
	headA := repo.Head()
	waitDeployed(t, cl, "dev", headA)
	var d ferry.Deployment
	c.call(admin, "POST", "/api/v1/envs/prod/promote", `{"reason": "first release"}`, 202).into(&d)
	waitFinished(t, cl, d.ID)

	// B: triggered, running in dev, promoted, rolled back.
	repo.Write("b.txt", "b\n")
	headB := repo.CommitAll("change b")
	var tr struct{ Build ferry.Build }
	c.call(admin, "POST", "/api/v1/builds", `{"branch": "master"}`, 202).into(&tr)
	if tr.Build.Commit != headB {
		t.Fatalf("triggered build of %s, want %s", tr.Build.Commit, headB)
	}
	waitDeployed(t, cl, "dev", headB)
	c.call(admin, "POST", "/api/v1/builds", `{"branch": "master", "commit": "`+headB+`"}`, 200) // exists: not queued
	c.call(admin, "POST", "/api/v1/envs/prod/promote", `{"ref": "dev", "reason": "second release"}`, 202).into(&d)
	waitFinished(t, cl, d.ID)
	var rollback ferry.Deployment
	c.call(admin, "POST", "/api/v1/envs/prod/rollback", `{"reason": "undo"}`, 202).into(&rollback)
	waitFinished(t, cl, rollback.ID)
	c.call(admin, "POST", "/api/v1/envs/dev/scale", `{"replicas": 2, "reason": "load"}`, 202).into(&d)
	waitFinished(t, cl, d.ID)

	// Prod locked while its status is read, then unlocked.
	c.call(admin, "POST", "/api/v1/envs/prod/lock", `{"reason": "freeze"}`, 201)
	c.call(viewer, "GET", "/api/v1/status", "", 200)
	c.call(admin, "DELETE", "/api/v1/envs/prod/lock", `{"reason": "thaw"}`, 200)

	// C: blocks in its test step until canceled.
	repo.Write("block", "\n")
	headC := repo.CommitAll("change c, which blocks")
	c.call(admin, "POST", "/api/v1/builds", `{"branch": "master"}`, 202).into(&tr)
	waitState(t, s, headC, ferry.BuildRunning, 3*time.Minute)
	cancelC := fmt.Sprintf("/api/v1/builds/%d/cancel", tr.Build.ID)
	c.call(admin, "POST", cancelC, `{"reason": "not this one"}`, 200)
	waitBuild(t, s, headC, time.Minute)

	c.call(admin, "POST", "/api/v1/quarantines", `{"ref": "`+headB[:12]+`", "reason": "broke prod"}`, 201)

	var tok struct{ Secret string }
	c.call(admin, "POST", "/api/v1/tokens", `{"name": "openapi-ci", "role": "deployer", "reason": "pipeline"}`, 201).into(&tok)
	c.call(tok.Secret, "GET", "/api/v1/version", "", 200) // so that it has a lastUsedAt
	c.call(admin, "DELETE", "/api/v1/tokens/openapi-ci", `{"reason": "rotated"}`, 200)

	buildA, err := s.Ledger().BuildByCommit(ctx, "tiny", headA)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/healthz",
		"/api/v1/version",
		"/api/v1/builds",
		"/api/v1/builds?branch=master&state=succeeded&state=canceled&limit=5",
		fmt.Sprintf("/api/v1/builds/%d", buildA.ID),
		fmt.Sprintf("/api/v1/builds/%d/logs", buildA.ID),
		fmt.Sprintf("/api/v1/builds/%d/logs?follow=1&after=1", buildA.ID),
		fmt.Sprintf("/api/v1/builds/%d/logs", tr.Build.ID),
		"/api/v1/events",
		"/api/v1/events?kind=build.&limit=10",
		"/api/v1/status",
		"/api/v1/status?check=1",
		"/api/v1/envs/dev/logs?tail=5",
		"/api/v1/deployments",
		"/api/v1/deployments?env=prod&limit=3",
		fmt.Sprintf("/api/v1/deployments/%d", rollback.ID),
		"/api/v1/dora",
		"/api/v1/dora?env=dev&window=2w",
		"/api/v1/diff?from=dev&to=prod",
		"/api/v1/envs/prod/releases",
		"/api/v1/tokens",
	} {
		token := viewer
		if path == "/api/v1/tokens" {
			token = admin
		}
		c.call(token, "GET", path, "", 200)
	}

	// Errors: one of each status the server can be brought to here.
	c.call(admin, "GET", "/api/v1/builds?limit=-1", "", 400)
	c.call(admin, "POST", "/api/v1/envs/dev/scale", `{"replicas": 0}`, 400)
	c.call(viewer, "GET", "/api/v1/envs/dev/releases", "", 400) // dev is not gated
	c.call("", "GET", "/api/v1/builds", "", 401)
	c.call(tok.Secret, "GET", "/api/v1/builds", "", 401) // revoked
	c.call(viewer, "POST", "/api/v1/builds", `{"branch": "master"}`, 403)
	c.call(admin, "GET", "/api/v1/deployments/99999", "", 404)
	c.call(admin, "GET", "/api/v1/dora?env=nope", "", 404)
	c.call(admin, "POST", cancelC, "", 409)
	c.call(admin, "DELETE", "/api/v1/tokens/openapi-ci", "", 409)
	c.unrouted(admin, "GET", "/api/v1/nothing", 404)
	if err := os.Rename(repo.Dir, repo.Dir+".gone"); err != nil {
		t.Fatal(err)
	}
	c.call(admin, "POST", "/api/v1/builds", `{"branch": "master"}`, 503)
	c.call(admin, "GET", "/api/v1/diff?from=dev&to=prod", "", 503)
	c.call(admin, "GET", "/api/v1/status?check=1", "", 503)

	var uncovered []string
	for _, op := range c.operations() {
		if !c.covered[op] {
			uncovered = append(uncovered, op)
		}
	}
	sort.Strings(uncovered)
	if len(uncovered) > 0 {
		t.Errorf("operations of the document this test never called with success: %q", uncovered)
	}
}

// apiCheck calls a server and checks every exchange against the OpenAPI
// document.
type apiCheck struct {
	t    *testing.T
	base string
	doc  map[string]any
	// covered holds "METHOD /template" of each operation answered with
	// success.
	covered map[string]bool
}

// answer is one checked response.
type answer struct {
	t    *testing.T
	body []byte
}

// into decodes a JSON answer.
func (a answer) into(v any) {
	a.t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		a.t.Fatalf("decode %s: %v", a.body, err)
	}
}

// fetchDocument reads GET /api/v1/openapi.json without a token.
func (c *apiCheck) fetchDocument() map[string]any {
	c.t.Helper()
	resp, err := http.Get(c.base + "/api/v1/openapi.json")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		c.t.Fatalf("GET /api/v1/openapi.json without a token = %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		c.t.Fatalf("the served document: %v", err)
	}
	c.covered["GET /api/v1/openapi.json"] = true
	return doc
}

// operations lists the document's operations as "METHOD /template".
func (c *apiCheck) operations() []string {
	var out []string
	for path, item := range c.doc["paths"].(map[string]any) {
		for m := range item.(map[string]any) {
			switch m {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				out = append(out, strings.ToUpper(m)+" "+path)
			}
		}
	}
	return out
}

// operation finds the operation serving method and path.
func (c *apiCheck) operation(method, path string) (string, map[string]any) {
	segs := strings.Split(path, "/")
	for tmpl, item := range c.doc["paths"].(map[string]any) {
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		match := true
		for i := range ts {
			if ts[i] != segs[i] && !(strings.HasPrefix(ts[i], "{") && segs[i] != "") {
				match = false
				break
			}
		}
		if op, ok := item.(map[string]any)[strings.ToLower(method)].(map[string]any); match && ok {
			return tmpl, op
		}
	}
	return "", nil
}

// call sends a request with token as bearer (none when empty) and body as
// JSON, wants status, and checks the exchange against the document.
func (c *apiCheck) call(token, method, target, body string, status int) answer {
	c.t.Helper()
	path, _, _ := strings.Cut(target, "?")
	tmpl, op := c.operation(method, path)
	if op == nil {
		c.t.Fatalf("%s %s: the document has no such operation", method, path)
	}
	key := method + " " + tmpl
	if body != "" && status < 400 { // error cases send bad bodies on purpose
		rb, _ := op["requestBody"].(map[string]any)
		if rb == nil {
			c.t.Errorf("%s: sends a body the document does not describe", key)
		} else if schema := c.schemaOf(rb, "application/json"); schema == nil {
			c.t.Errorf("%s: the request body has no application/json schema", key)
		} else {
			c.validate(key+" request", schema, []byte(body))
		}
	}
	resp, got := c.send(token, method, target, body)
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s = %d %s, want %d", method, target, resp.StatusCode, got, status)
	}
	r, ok := op["responses"].(map[string]any)[strconv.Itoa(status)].(map[string]any)
	if !ok {
		c.t.Errorf("%s answered %d, which the document does not list", key, status)
		return answer{c.t, got}
	}
	r = c.deref(r)
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	schema := c.schemaOf(r, mt)
	if schema == nil {
		c.t.Errorf("%s %d: Content-Type %q is not among the documented %v", key, status, mt, keys(r["content"]))
		return answer{c.t, got}
	}
	switch mt {
	case "application/json":
		c.validate(fmt.Sprintf("%s %s → %d", method, target, status), schema, got)
	case "application/x-ndjson":
		sc := bufio.NewScanner(bytes.NewReader(got))
		sc.Buffer(nil, 1<<20)
		n := 0
		for sc.Scan() {
			n++
			c.validate(fmt.Sprintf("%s %s → %d, line %d", method, target, status, n), schema, sc.Bytes())
		}
		if n == 0 {
			c.t.Errorf("%s %s: an empty stream", method, target)
		}
	case "text/plain":
		// A string: nothing to validate.
	default:
		c.t.Errorf("%s: this test cannot check %s", key, mt)
	}
	if status < 300 {
		c.covered[key] = true
	}
	return answer{c.t, got}
}

// unrouted checks an answer to a request that no operation serves (the
// JSON 404 of /api/) against the error schema.
func (c *apiCheck) unrouted(token, method, target string, status int) {
	c.t.Helper()
	if tmpl, _ := c.operation(method, target); tmpl != "" {
		c.t.Fatalf("%s %s is an operation (%s)", method, target, tmpl)
	}
	resp, got := c.send(token, method, target, "")
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" {
		c.t.Fatalf("%s %s = %d %s %s, want %d application/json", method, target, resp.StatusCode, resp.Header.Get("Content-Type"), got, status)
	}
	c.validate(method+" "+target, map[string]any{"$ref": "#/components/schemas/Error"}, got)
}

func (c *apiCheck) send(token, method, target, body string) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+target, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read the answer: %v", method, target, err)
	}
	return resp, got
}

// deref follows v's $ref, if it has one.
func (c *apiCheck) deref(v map[string]any) map[string]any {
	c.t.Helper()
	ref, ok := v["$ref"].(string)
	if !ok {
		return v
	}
	target, err := jsonPointer(c.doc, ref)
	if err != nil {
		c.t.Fatalf("$ref %s: %v", ref, err)
	}
	return c.deref(target.(map[string]any))
}

// schemaOf is the schema of a request body or response for media type mt.
func (c *apiCheck) schemaOf(r map[string]any, mt string) any {
	content, _ := r["content"].(map[string]any)
	m, _ := content[mt].(map[string]any)
	if m == nil {
		return nil
	}
	return m["schema"]
}

func (c *apiCheck) validate(what string, schema any, data []byte) {
	c.t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		c.t.Errorf("%s: not JSON: %v\n%s", what, err, data)
		return
	}
	if errs := validate(c.doc, schema, v, "$"); len(errs) > 0 {
		c.t.Errorf("%s does not match the document:\n  %s\nbody: %s", what, strings.Join(errs, "\n  "), data)
	}
}

func keys(v any) []string {
	m, _ := v.(map[string]any)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// jsonPointer follows a local reference (#/a/b) in doc.
func jsonPointer(doc map[string]any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("%q is not a local reference", ref)
	}
	var cur any = doc
	for part := range strings.SplitSeq(rest, "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: %q is not inside an object", ref, part)
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("%s: no %q", ref, part)
		}
	}
	return cur, nil
}

// schemaKeywords are the JSON Schema keywords validate understands;
// annotations it ignores are true, assertions it checks false. Any other
// keyword is an error, so that the document cannot say more than the
// tests check.
var schemaKeywords = map[string]bool{
	"description": true, "default": true, "title": true, "examples": true,
	"$ref": false, "type": false, "enum": false, "const": false, "required": false,
	"properties": false, "additionalProperties": false, "items": false,
	"format": false, "pattern": false, "minimum": false, "maximum": false,
}

// validate checks v (decoded with UseNumber) against a subset of JSON
// Schema 2020-12 — the keywords in schemaKeywords — and returns what does
// not match, each prefixed with where (at, a JSONPath).
func validate(doc map[string]any, schema, v any, at string) []string {
	s, ok := schema.(map[string]any)
	if !ok {
		return []string{at + ": the schema is not an object"}
	}
	var errs []string
	for k := range s {
		if _, known := schemaKeywords[k]; !known {
			errs = append(errs, fmt.Sprintf("%s: the test's validator does not know keyword %q", at, k))
		}
	}
	if ref, ok := s["$ref"].(string); ok {
		target, err := jsonPointer(doc, ref)
		if err != nil {
			return append(errs, at+": "+err.Error())
		}
		return append(errs, validate(doc, target, v, at)...)
	}
	if t, ok := s["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, e := range t {
				types = append(types, fmt.Sprint(e))
			}
		}
		got := jsonType(v)
		if !slices.Contains(types, got) && !(got == "integer" && slices.Contains(types, "number")) {
			return append(errs, fmt.Sprintf("%s: %s is %s, want %s", at, brief(v), got, strings.Join(types, " or ")))
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return sameJSON(e, v) }) {
		errs = append(errs, fmt.Sprintf("%s: %s is not one of %v", at, brief(v), enum))
	}
	if cv, ok := s["const"]; ok && !sameJSON(cv, v) {
		errs = append(errs, fmt.Sprintf("%s: %s, want %v", at, brief(v), cv))
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		req, _ := s["required"].([]any)
		for _, r := range req {
			if _, ok := v[r.(string)]; !ok {
				errs = append(errs, fmt.Sprintf("%s: the required property %q is missing", at, r))
			}
		}
		ap, hasAP := s["additionalProperties"]
		if hasAP && ap != false {
			errs = append(errs, at+": the test's validator knows only additionalProperties: false")
		}
		names := make([]string, 0, len(v))
		for k := range v {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if ps, ok := props[k]; ok {
				errs = append(errs, validate(doc, ps, v[k], at+"."+k)...)
			} else if hasAP {
				errs = append(errs, fmt.Sprintf("%s: property %q is not in the document", at, k))
			}
		}
	case []any:
		if items, ok := s["items"]; ok {
			for i, e := range v {
				errs = append(errs, validate(doc, items, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	case string:
		if f, ok := s["format"]; ok {
			if f != "date-time" {
				errs = append(errs, fmt.Sprintf("%s: the test's validator does not know format %v", at, f))
			} else if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a date-time: %v", at, v, err))
			}
		}
		if p, ok := s["pattern"].(string); ok {
			if re, err := regexp.Compile(p); err != nil {
				errs = append(errs, fmt.Sprintf("%s: pattern %q: %v", at, p, err))
			} else if !re.MatchString(v) {
				errs = append(errs, fmt.Sprintf("%s: %q does not match %s", at, v, p))
			}
		}
	case json.Number:
		n, _ := v.Float64()
		if m, ok := s["minimum"].(float64); ok && n < m {
			errs = append(errs, fmt.Sprintf("%s: %s is below the minimum %v", at, v, m))
		}
		if m, ok := s["maximum"].(float64); ok && n > m {
			errs = append(errs, fmt.Sprintf("%s: %s is above the maximum %v", at, v, m))
		}
	}
	return errs
}

// jsonType is the JSON Schema type of a value decoded with UseNumber.
func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// sameJSON compares a document value (decoded without UseNumber) with a
// body value (decoded with it).
func sameJSON(docValue, v any) bool {
	if n, ok := v.(json.Number); ok {
		f, err := n.Float64()
		return err == nil && reflect.DeepEqual(docValue, f)
	}
	return reflect.DeepEqual(docValue, v)
}

func brief(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}

// TestOpenAPIValidator: the validator the server test relies on refuses
// what it must.
func TestOpenAPIValidator(t *testing.T) {
	doc := map[string]any{}
	if err := json.Unmarshal([]byte(`{"components": {"schemas": {
		"Thing": {"type": "object", "additionalProperties": false, "required": ["id", "state"],
			"properties": {"id": {"type": "integer", "minimum": 1}, "state": {"$ref": "#/components/schemas/State"},
				"at": {"type": "string", "format": "date-time"}, "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
				"rate": {"type": "number", "maximum": 1}, "ok": {"const": "ok"}, "maybe": {"type": ["string", "null"]}}},
		"State": {"type": "string", "enum": ["on", "off"]},
		"Odd": {"oneOf": [{"type": "string"}]}}}}`), &doc); err != nil {
		t.Fatal(err)
	}
	thing := map[string]any{"$ref": "#/components/schemas/Thing"}
	for _, tt := range []struct {
		schema any
		body   string
		want   string // a part of the one error expected; "" for none
	}{
		{thing, `{"id": 1, "state": "on", "at": "2026-01-02T03:04:05.123Z", "tags": ["a"], "rate": 0.5, "ok": "ok", "maybe": null}`, ""},
		{thing, `{"id": 1, "state": "on", "new": 1}`, `property "new" is not in the document`},
		{thing, `{"id": 1}`, `required property "state" is missing`},
		{thing, `{"id": 1.5, "state": "on"}`, "is number, want integer"},
		{thing, `{"id": "1", "state": "on"}`, "is string, want integer"},
		{thing, `{"id": 0, "state": "on"}`, "below the minimum"},
		{thing, `{"id": 1, "state": "maybe"}`, "is not one of"},
		{thing, `{"id": 1, "state": "on", "at": "yesterday"}`, "not a date-time"},
		{thing, `{"id": 1, "state": "on", "tags": ["a", "B"]}`, "$.tags[1]: \"B\" does not match"},
		{thing, `{"id": 1, "state": "on", "rate": 2}`, "above the maximum"},
		{thing, `{"id": 1, "state": "on", "ok": "no"}`, `want ok`},
		{thing, `{"id": 1, "state": "on", "maybe": 3}`, "want string or null"},
		{thing, `[]`, "is array, want object"},
		{map[string]any{"$ref": "#/components/schemas/Nothing"}, `{}`, `no "Nothing"`},
		{map[string]any{"$ref": "#/components/schemas/Odd"}, `"x"`, `does not know keyword "oneOf"`},
	} {
		dec := json.NewDecoder(strings.NewReader(tt.body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		errs := validate(doc, tt.schema, v, "$")
		switch {
		case tt.want == "" && len(errs) > 0:
			t.Errorf("validate(%s) = %q, want no error", tt.body, errs)
		case tt.want != "" && (len(errs) != 1 || !strings.Contains(errs[0], tt.want)):
			t.Errorf("validate(%s) = %q, want one error with %q", tt.body, errs, tt.want)
		}
	}
}

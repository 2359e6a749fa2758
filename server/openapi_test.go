package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

// TestOpenAPI checks api/openapi.yaml, as the server serves it, against a
// real ferry, with kin-openapi (its loader, router and openapi3filter): dev built from master, prod promoted from dev. It makes every
// list non-empty (builds, a canceled one, deployments of every kind but
// auto-rollback, a lock, a quarantine, tokens), then calls every operation
// of the document and validates each answer — its status must be one the
// operation documents, its Content-Type one of that response's, its
// headers and body valid against that response, where every object schema
// refuses undocumented properties — and each successful request (its
// parameters and body) against the operation. Errors of both classes (4xx, and 503 once
// the repository is gone) are validated against the error schema. Any
// operation of the document left uncalled fails the test.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	hold := newGate(t) // backstop for the build that blocks until canceled
	runtime := `runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`
	// A commit that holds a file named block builds until canceled.
	yaml := withTest(tinyConfig(repo.Dir, t.TempDir(), ""), fmt.Sprintf(`while [ -f block ] && [ ! -f %s ]; do sleep 0.05; done`, hold.path))
	yaml = strings.Replace(yaml, "runtime: { local: { listen: 127.0.0.1:0 } }", runtime, 1) + "  prod:\n    from: dev\n    " + runtime + "\n" +
		"  qa:\n    from: dev\n    approval: { required: 1 }\n    " + runtime + "\n" +
		// stage releases through a canary that waits: one long step, judged
		// (inconclusive, there is no traffic) every 100 ms.
		"  stage:\n    from: dev\n    strategy: { canary: { steps: [ { weight: 20, for: 1h } ], baseline: false, analysis: { interval: 100ms, inconclusive: 1h } } }\n    " + runtime + "\n"
	s := start(t, yaml, Options{})
	t.Cleanup(func() { hold.release(t) }) // before the server closes
	ctx := context.Background()

	c := &apiCheck{t: t, base: s.URL(), covered: map[string]bool{}}
	c.fetchDocument()
	admin := tokenFor(t, s, ferry.RoleAdmin)
	viewer := tokenFor(t, s, ferry.RoleViewer)
	cl := tokenClient(t, s, admin) // to wait for deployments
	releaser := tokenFor(t, s, ferry.RoleReleaser)

	// A: the initial import, built and running in dev, then released to prod.
	headA := repo.Head()
	waitDeployed(t, cl, "dev", headA)
	var d api.ActionBody
	c.call(admin, "POST", "/api/v1/envs/prod/promote", `{"reason": "first release"}`, 202).into(&d)
	waitFinished(t, cl, deploymentOf(t, cl, d.Action))
	// ... and to qa, whose approval rule makes it a release request that
	// another token approves.
	c.call(admin, "POST", "/api/v1/envs/qa/promote", `{"reason": "to qa"}`, 202).into(&d)
	if _, err := cl.Decided(ctx, d.Action.ID, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	c.call(viewer, "GET", "/api/v1/requests?env=qa&state=pending", "", 200)
	c.call(viewer, "GET", "/api/v1/requests/1", "", 200)
	var approved api.RequestBody
	c.call(releaser, "POST", "/api/v1/requests/1/approve", `{"reason": "reviewed"}`, 202).into(&approved)
	waitFinished(t, cl, deploymentOf(t, cl, approved.Action))
	c.call(viewer, "GET", "/api/v1/requests/1", "", 200)

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
	waitFinished(t, cl, deploymentOf(t, cl, d.Action))
	var rollback api.ActionBody
	c.call(admin, "POST", "/api/v1/envs/prod/rollback", `{"reason": "undo"}`, 202).into(&rollback)
	rollbackID := deploymentOf(t, cl, rollback.Action)
	waitFinished(t, cl, rollbackID)

	// stage: A straight (nothing ran before), then B through a canary that
	// is paused, resumed and promoted; back to A (a rollback skips the
	// canary) and B again, aborted.
	c.call(admin, "POST", "/api/v1/envs/stage/promote", `{"ref": "`+headA+`", "reason": "first"}`, 202).into(&d)
	waitFinished(t, cl, deploymentOf(t, cl, d.Action))
	c.call(viewer, "GET", "/api/v1/envs/stage/rollout", "", 200)
	c.call(admin, "POST", "/api/v1/envs/stage/promote", `{"ref": "dev", "reason": "through the canary"}`, 202).into(&d)
	c.waitCanary(viewer, "stage", func(b api.CanaryBody) bool { return b.Active && b.Verdict != nil })
	c.call(admin, "POST", "/api/v1/envs/stage/rollout/pause", `{"reason": "look closer"}`, 200)
	c.call(admin, "POST", "/api/v1/envs/stage/rollout/pause", `{"reason": "again"}`, 409)
	c.call(admin, "POST", "/api/v1/envs/stage/rollout/resume", `{}`, 200)
	c.call(viewer, "POST", "/api/v1/envs/stage/rollout/promote", `{"reason": "looks fine"}`, 403)
	c.call(admin, "POST", "/api/v1/envs/stage/rollout/promote", `{"reason": "looks fine"}`, 200)
	waitFinished(t, cl, deploymentOf(t, cl, d.Action))
	c.call(admin, "POST", "/api/v1/envs/stage/rollback", `{"reason": "back to A"}`, 202).into(&d)
	waitFinished(t, cl, deploymentOf(t, cl, d.Action))
	c.call(admin, "POST", "/api/v1/envs/stage/promote", `{"ref": "`+headB+`", "reason": "B again"}`, 202).into(&d)
	again := deploymentOf(t, cl, d.Action)
	c.waitCanary(viewer, "stage", func(b api.CanaryBody) bool { return b.Active })
	c.call(admin, "POST", "/api/v1/envs/stage/rollout/abort", `{"reason": "not now"}`, 200)
	if got := waitEnded(t, cl, again); got.State != ferry.DeploymentFailed {
		t.Errorf("aborted canary's deployment = %s, want failed", got.State)
	}
	c.call(admin, "POST", "/api/v1/envs/stage/rollout/abort", `{"reason": "twice"}`, 409)
	c.call(admin, "POST", "/api/v1/envs/dev/scale", `{"replicas": 2, "reason": "load"}`, 202).into(&d)
	waitFinished(t, cl, deploymentOf(t, cl, d.Action))
	c.call(admin, "POST", "/api/v1/envs/qa/promote", `{}`, 202).into(&d)
	if _, err := cl.Decided(ctx, d.Action.ID, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	c.call(admin, "POST", "/api/v1/requests/2/cancel", `{"reason": "not today"}`, 200)
	c.call(releaser, "POST", "/api/v1/requests/2/approve", "", 409)

	// Prod locked while its status is read, then unlocked.
	c.call(admin, "POST", "/api/v1/envs/prod/lock", `{"reason": "freeze"}`, 202).into(&d)
	if _, err := cl.Decided(ctx, d.Action.ID, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	c.call(viewer, "GET", "/api/v1/status", "", 200)
	c.call(admin, "DELETE", "/api/v1/envs/prod/lock", `{"reason": "thaw"}`, 202)

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
		fmt.Sprintf("/api/v1/deployments/%d", rollbackID),
		"/api/v1/actions",
		"/api/v1/actions?env=prod&state=succeeded&state=refused&limit=3",
		fmt.Sprintf("/api/v1/actions/%d", rollback.Action.ID),
		"/api/v1/dora",
		"/api/v1/dora?env=dev&window=2w",
		"/api/v1/diff?from=dev&to=prod",
		"/api/v1/envs/prod/releases",
		"/api/v1/tokens",
		"/api/v1/notifications",
		"/api/v1/requests",
	} {
		token := viewer
		if path == "/api/v1/tokens" {
			token = admin
		}
		c.call(token, "GET", path, "", 200)
	}

	// How ferry would judge a hand-made env/prod tag (what the hook asks).
	c.call(viewer, "POST", "/api/v1/envs/prod/push-check", fmt.Sprintf(
		`{"updates": [{"ref": "refs/tags/env/prod", "old": "%s", "new": "%s", "commit": "%s"}]}`, ferry.ZeroSHA, headA, headA), 200)
	c.call(viewer, "POST", "/api/v1/envs/prod/push-check", `{"updates": []}`, 400)

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
	c.call(admin, "POST", "/api/v1/envs/dev/scale", `{"replicas": 2, "why": "load"}`, 400)
	c.call(admin, "POST", "/api/v1/envs/dev/scale", `{"replicas": 2}`+strings.Repeat(" ", 65<<10), 413)
	c.unrouted(admin, "GET", "/api/v1/nothing", 404)
	c.wrongMethod(admin, "PUT", "/api/v1/builds", 405)
	c.wrongMethod(admin, "GET", "/api/v1/envs/prod/lock", 405)
	c.wrongMethod("", "POST", "/healthz", 405)
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

// waitCanary reads env's rollout until ok holds.
func (c *apiCheck) waitCanary(token, env string, ok func(api.CanaryBody) bool) {
	c.t.Helper()
	deadline := time.Now().Add(deployTimeout)
	for time.Now().Before(deadline) {
		var b api.CanaryBody
		c.call(token, "GET", "/api/v1/envs/"+env+"/rollout", "", 200).into(&b)
		if ok(b) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	var b api.CanaryBody
	c.call(token, "GET", "/api/v1/envs/"+env+"/rollout", "", 200).into(&b)
	c.t.Fatalf("the canary on %s did not reach the state waited for within %s: %+v", env, deployTimeout, b)
}

// apiCheck calls a server and checks every exchange against the OpenAPI
// document.
type apiCheck struct {
	t      *testing.T
	base   string
	doc    *openapi3.T
	router routers.Router
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

// fetchDocument reads GET /api/v1/openapi.json without a token, loads and
// validates it, and routes requests with it.
func (c *apiCheck) fetchDocument() {
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
	if c.doc, err = openapi3.NewLoader().LoadFromData(body); err != nil {
		c.t.Fatalf("load the served document: %v", err)
	}
	if err := c.doc.Validate(context.Background()); err != nil {
		c.t.Fatalf("the served document is not valid: %v", err)
	}
	if c.router, err = gorillamux.NewRouter(c.doc); err != nil {
		c.t.Fatalf("route with the served document: %v", err)
	}
	// Each line of a log stream is one JSON value, validated alone.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.JSONBodyDecoder)
	c.covered["GET /api/v1/openapi.json"] = true
}

// operations lists the document's operations as "METHOD /template".
func (c *apiCheck) operations() []string {
	var out []string
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	return out
}

// request is a request with token as bearer (none when empty) and body as
// JSON.
func (c *apiCheck) request(token, method, target, body string) *http.Request {
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
	return req
}

// call sends a request with token as bearer (none when empty) and body as
// JSON, wants status, and checks the exchange against the document.
func (c *apiCheck) call(token, method, target, body string, status int) answer {
	c.t.Helper()
	ctx := context.Background()
	route, params, err := c.router.FindRoute(c.request(token, method, target, body))
	if err != nil {
		c.t.Fatalf("%s %s: the document has no such operation: %v", method, target, err)
	}
	key := method + " " + route.Path
	in := &openapi3filter.RequestValidationInput{
		Request: c.request(token, method, target, body), PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, RejectWhenRequestBodyNotSpecified: true},
	}
	if status < 400 { // error cases send bad requests on purpose
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			c.t.Errorf("%s %s: the request does not match the document: %v", method, target, err)
		}
	}
	resp, got := c.send(token, method, target, body)
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s = %d %s, want %d", method, target, resp.StatusCode, got, status)
	}
	what := fmt.Sprintf("%s %s → %d", method, target, status)
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/x-ndjson" {
		sc := bufio.NewScanner(bytes.NewReader(got))
		sc.Buffer(nil, 1<<20)
		n := 0
		for sc.Scan() {
			n++
			c.validateResponse(fmt.Sprintf("%s, line %d", what, n), in, resp, sc.Bytes())
		}
		if n == 0 {
			c.t.Errorf("%s: an empty stream", what)
		}
	} else {
		c.validateResponse(what, in, resp, got)
	}
	if status < 300 {
		c.covered[key] = true
	}
	return answer{c.t, got}
}

// validateResponse checks one answer (or one line of a stream) against
// the operation's response of its status, which must be documented.
func (c *apiCheck) validateResponse(what string, in *openapi3filter.RequestValidationInput, resp *http.Response, body []byte) {
	c.t.Helper()
	err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true},
	})
	if err != nil {
		c.t.Errorf("%s does not match the document: %v\nbody: %s", what, err, body)
	}
}

// unrouted checks an answer to a request that no operation serves (the
// JSON 404 of /api/) against the document's shared response of its
// status.
func (c *apiCheck) unrouted(token, method, target string, status int) {
	c.t.Helper()
	if _, _, err := c.router.FindRoute(c.request(token, method, target, "")); !errors.Is(err, routers.ErrPathNotFound) {
		c.t.Fatalf("%s %s: routing it with the document = %v, want %v", method, target, err, routers.ErrPathNotFound)
	}
	resp, got := c.send(token, method, target, "")
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s = %d %s, want %d", method, target, resp.StatusCode, got, status)
	}
	c.validateShared(fmt.Sprintf("%s %s → %d", method, target, status), "NotFound", resp, got)
}

// wrongMethod checks an answer to a method that a path of the document
// has no operation for: the document's shared MethodNotAllowed response,
// with an Allow header naming exactly the path's methods (and HEAD with
// GET).
func (c *apiCheck) wrongMethod(token, method, target string, status int) {
	c.t.Helper()
	if _, _, err := c.router.FindRoute(c.request(token, method, target, "")); !errors.Is(err, routers.ErrMethodNotAllowed) {
		c.t.Fatalf("%s %s: routing it with the document = %v, want %v", method, target, err, routers.ErrMethodNotAllowed)
	}
	var allow []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		probe := m
		if m == "HEAD" {
			probe = "GET" // served by every GET route
		}
		if _, _, err := c.router.FindRoute(c.request(token, probe, target, "")); err == nil {
			allow = append(allow, m)
		}
	}
	resp, got := c.send(token, method, target, "")
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s = %d %s, want %d", method, target, resp.StatusCode, got, status)
	}
	if want := strings.Join(allow, ", "); resp.Header.Get("Allow") != want {
		c.t.Errorf("%s %s: Allow = %q, want the document's methods of the path %q", method, target, resp.Header.Get("Allow"), want)
	}
	c.validateShared(fmt.Sprintf("%s %s → %d", method, target, status), "MethodNotAllowed", resp, got)
}

// validateShared checks an answer against the shared response name of
// the document (#/components/responses/name): its required headers,
// Content-Type and body.
func (c *apiCheck) validateShared(what, name string, resp *http.Response, body []byte) {
	c.t.Helper()
	r := c.doc.Components.Responses[name]
	if r == nil {
		c.t.Fatalf("the document has no shared response %s", name)
	}
	for h, ref := range r.Value.Headers {
		if ref.Value.Required && resp.Header.Get(h) == "" {
			c.t.Errorf("%s: no %s header, which response %s requires", what, h, name)
		}
	}
	mt := resp.Header.Get("Content-Type")
	media := r.Value.Content.Get(mt)
	if media == nil || media.Schema == nil {
		c.t.Errorf("%s: Content-Type %q is not one of response %s", what, mt, name)
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		c.t.Errorf("%s: not JSON: %v\n%s", what, err, body)
		return
	}
	if err := media.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse()); err != nil {
		c.t.Errorf("%s does not match response %s: %v\nbody: %s", what, name, err, body)
	}
}

func (c *apiCheck) send(token, method, target, body string) (*http.Response, []byte) {
	c.t.Helper()
	resp, err := http.DefaultClient.Do(c.request(token, method, target, body))
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

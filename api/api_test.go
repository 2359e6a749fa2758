package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/ferryhq/ferry"
)

// TestWrongMethod: a path the API has routes for, asked with another
// method, is 405 with the methods it has in Allow and the JSON error body;
// a path it has none for is 404 without Allow; and under /api/ either
// needs a token first.
func TestWrongMethod(t *testing.T) {
	ta := newTestAPI(t, devAndProd)
	for _, tc := range []struct {
		secret, method, path string
		status               int
		code, allow          string
	}{
		{ta.secrets[ferry.RoleViewer], "PUT", "/api/v1/builds/1", 405, ferry.EMETHOD, "GET, HEAD"},
		{ta.secrets[ferry.RoleViewer], "DELETE", "/api/v1/builds", 405, ferry.EMETHOD, "GET, HEAD, POST"},
		{ta.secrets[ferry.RoleViewer], "GET", "/api/v1/envs/dev/scale", 405, ferry.EMETHOD, "POST"},
		{ta.secrets[ferry.RoleAdmin], "PATCH", "/api/v1/tokens/viewer", 405, ferry.EMETHOD, "DELETE"},
		{ta.secrets[ferry.RoleAdmin], "POST", "/api/v1/openapi.json", 405, ferry.EMETHOD, "GET, HEAD"},
		{"", "POST", "/healthz", 405, ferry.EMETHOD, "GET, HEAD"},
		{ta.secrets[ferry.RoleViewer], "PUT", "/api/v1/nothing", 404, ferry.ENOTFOUND, ""},
		{"", "PUT", "/api/v1/builds/1", 401, ferry.EUNAUTHORIZED, ""},
	} {
		req, err := http.NewRequest(tc.method, ta.url+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.secret != "" {
			req.Header.Set("Authorization", "Bearer "+tc.secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body ErrorBody
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow || resp.Header.Get("Content-Type") != "application/json" ||
			err != nil || body.Code != tc.code || body.Error == "" {
			t.Errorf("%s %s = %d Allow %q, %s %+v (%v); want %d Allow %q, application/json with code %s",
				tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), body, err, tc.status, tc.allow, tc.code)
		}
		if tc.status == 405 && !strings.Contains(body.Error, tc.allow) {
			t.Errorf("%s %s: message %q does not name the methods %s", tc.method, tc.path, body.Error, tc.allow)
		}
	}
}

// TestStrictBodies: every request body is one JSON object of at most 64
// KiB with no unknown field and nothing after it, refused with a message
// in plain words (no decoder's or Go type's name); an optional body may be
// left out, however the request is framed.
func TestStrictBodies(t *testing.T) {
	ta := newTestAPI(t, devAndProd)
	deployer, admin := ta.secrets[ferry.RoleDeployer], ta.secrets[ferry.RoleAdmin]
	big := `{"branch": "` + strings.Repeat("a", 70<<10) + `"}`
	for _, tc := range []struct {
		secret, method, path, body string
		status                     int
		want                       string // in the message
	}{
		{deployer, "POST", "/api/v1/builds", `{"branch": "master"}` + "\n \n", 202, ""},
		{deployer, "POST", "/api/v1/builds", `{"branch": "master", "extra": 1}`, 400, `unknown field "extra"`},
		{deployer, "POST", "/api/v1/builds", `{"branch": "master"} {"branch": "x"}`, 400, "more after its JSON object"},
		{deployer, "POST", "/api/v1/builds", `{"branch": "master"}}`, 400, "more after its JSON object"},
		{deployer, "POST", "/api/v1/builds", `{"branch": "master"} x`, 400, "more after its JSON object"},
		{deployer, "POST", "/api/v1/builds", "", 400, "request body is empty"},
		{deployer, "POST", "/api/v1/builds", `{"branch": `, 400, "ends inside its JSON"},
		{deployer, "POST", "/api/v1/builds", `nope`, 400, "not valid JSON (at byte 2)"},
		{deployer, "POST", "/api/v1/builds", `[1]`, 400, "must be a JSON object"},
		{deployer, "POST", "/api/v1/builds", `{"branch": 1}`, 400, "branch must be a string"},
		{deployer, "POST", "/api/v1/envs/dev/scale", `{"replicas": "2"}`, 400, "replicas must be a whole number"},
		{deployer, "POST", "/api/v1/builds", big, 413, "over 64 KiB"},
		{deployer, "POST", "/api/v1/builds", `{"branch": "master"}` + strings.Repeat(" ", 70<<10), 413, "over 64 KiB"},
		{admin, "DELETE", "/api/v1/tokens/viewer", `{"reason": "x", "why": "y"}`, 400, `unknown field "why"`},
		{admin, "DELETE", "/api/v1/tokens/viewer", "", 200, ""},
	} {
		status, body := ta.do(t, tc.secret, tc.method, tc.path, tc.body)
		var eb ErrorBody
		_ = json.Unmarshal([]byte(body), &eb)
		what := tc.body
		if len(what) > 60 {
			what = what[:60] + "…"
		}
		if status != tc.status || !strings.Contains(eb.Error, tc.want) {
			t.Errorf("%s %s %q = %d %s, want %d with %q", tc.method, tc.path, what, status, body, tc.status, tc.want)
		}
		if wantCode := map[int]string{400: ferry.EINVALID, 413: ferry.ETOOLARGE}[tc.status]; eb.Code != wantCode {
			t.Errorf("%s %s %q: code %q, want %q", tc.method, tc.path, what, eb.Code, wantCode)
		}
		if strings.Contains(eb.Error, "json:") || strings.Contains(eb.Error, "api.") {
			t.Errorf("%s %s %q: message %q shows the decoder's words", tc.method, tc.path, what, eb.Error)
		}
	}

	// An optional body left out of a chunked request (no Content-Length:
	// before, only that header told an absent body).
	conn, err := net.Dial("tcp", strings.TrimPrefix(ta.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "DELETE /api/v1/tokens/deployer HTTP/1.1\r\nHost: ferry\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n", admin)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("DELETE /api/v1/tokens/deployer, chunked without a body = %d, want 200", resp.StatusCode)
	}
}

// TestUnknownFilterValues: a list filter on a value no row can have is
// refused with the values it takes, never answered with an empty list.
func TestUnknownFilterValues(t *testing.T) {
	ta := newTestAPI(t, devAndProd)
	viewer := ta.secrets[ferry.RoleViewer]
	for _, tc := range []struct {
		path   string
		status int
		want   string // the message of a refusal
	}{
		{"/api/v1/builds?state=succeeded&state=done", 400, `unknown build state "done" (state=queued|running|succeeded|failed|superseded|canceled)`},
		{"/api/v1/deployments?state=ok", 400, `unknown deployment state "ok" (state=pending|rolling|verifying|succeeded|failed|rolled-back|superseded)`},
		{"/api/v1/deployments?kind=release", 400, `unknown deployment kind "release" (kind=deploy|promote|rollback|auto-rollback|scale)`},
		{"/api/v1/deployments?state=failed&kind=promote&kind=rollback", 200, ""},
		{"/api/v1/builds?state=canceled", 200, ""},
	} {
		status, body := ta.do(t, viewer, "GET", tc.path, "")
		var eb ErrorBody
		_ = json.Unmarshal([]byte(body), &eb)
		if status != tc.status || eb.Error != tc.want {
			t.Errorf("GET %s = %d %s, want %d %q", tc.path, status, body, tc.status, tc.want)
		}
	}
}

// TestOddText: a NUL byte or invalid UTF-8 in a path value, a query
// parameter or a body's string is refused with 400 and a message naming
// it, before the handler runs, whatever the ledger behind (the server's
// tests run the same on PostgreSQL).
func TestOddText(t *testing.T) {
	ta := newTestAPI(t, devAndProd)
	viewer, deployer, admin := ta.secrets[ferry.RoleViewer], ta.secrets[ferry.RoleDeployer], ta.secrets[ferry.RoleAdmin]
	for _, tc := range []struct {
		secret, method, path, body string
		want                       string // the message
	}{
		{viewer, "GET", "/api/v1/builds?branch=%00", "", "query parameter branch contains a NUL byte"},
		{viewer, "GET", "/api/v1/builds?branch=ma%FFster", "", "query parameter branch is not valid UTF-8"},
		{viewer, "GET", "/api/v1/builds?state=queued&state=%00", "", "query parameter state contains a NUL byte"},
		{viewer, "GET", "/api/v1/builds?%FF=1", "", "query parameter name is not valid UTF-8"},
		{viewer, "GET", "/api/v1/events?kind=build.%00", "", "query parameter kind contains a NUL byte"},
		{viewer, "GET", "/api/v1/events?env=%C3", "", "query parameter env is not valid UTF-8"},
		{viewer, "GET", "/api/v1/deployments?env=%00", "", "query parameter env contains a NUL byte"},
		{viewer, "GET", "/api/v1/envs/de%00v/logs", "", "path parameter env contains a NUL byte"},
		{deployer, "POST", "/api/v1/envs/%FF/scale", `{"replicas": 2}`, "path parameter env is not valid UTF-8"},
		{deployer, "POST", "/api/v1/builds", `{"branch": "ma\u0000ster"}`, "request body: branch contains a NUL byte"},
		{deployer, "POST", "/api/v1/builds", `{"branch": "master", "commit": "\u0000"}`, "request body: commit contains a NUL byte"},
		{deployer, "POST", "/api/v1/builds/1/cancel", `{"reason": "x\u0000"}`, "request body: reason contains a NUL byte"},
		{admin, "DELETE", "/api/v1/tokens/vie%00wer", "", "path parameter name contains a NUL byte"},
		{admin, "POST", "/api/v1/tokens", `{"name": "ci\u0000", "role": "viewer"}`, "request body: name contains a NUL byte"},
	} {
		status, body := ta.do(t, tc.secret, tc.method, tc.path, tc.body)
		var eb ErrorBody
		_ = json.Unmarshal([]byte(body), &eb)
		if status != 400 || eb.Code != ferry.EINVALID || eb.Error != tc.want {
			t.Errorf("%s %s %s = %d %s, want 400 %q", tc.method, tc.path, tc.body, status, body, tc.want)
		}
	}
	// Without a token the answer is still 401: the check runs after it.
	if status, body := ta.do(t, "", "GET", "/api/v1/builds?branch=%00", ""); status != 401 {
		t.Errorf("GET /api/v1/builds?branch=%%00 without a token = %d %s, want 401", status, body)
	}
	// Text that is only unusual is taken.
	if status, body := ta.do(t, viewer, "GET", "/api/v1/builds?branch=f%C3%BCr-%E2%9C%93", ""); status != 200 {
		t.Errorf("GET /api/v1/builds?branch=für-✓ = %d %s, want 200", status, body)
	}
}

package api

import (
	"encoding/json"
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

package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

// TestAPIBadInput: every malformed or impossible request gets its status
// and a JSON error body with a code, and queues nothing.
func TestAPIBadInput(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	head := repo.Head()
	// A commit that exists in the repository but not on master.
	repo.Git(time.Time{}, "checkout", "-q", "-b", "other")
	repo.Write("other.txt", "x")
	other := repo.CommitAll("a commit on other")
	repo.Git(time.Time{}, "checkout", "-q", "master")
	s := start(t, withTest(tinyConfig(repo.Dir, t.TempDir(), ""), ""), Options{})
	waitBuild(t, s, head, time.Minute)
	secret := tokenFor(t, s, ferry.RoleAdmin)

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, message            string
	}{
		{"malformed JSON", "POST", "/api/v1/builds", `{"branch":`, 400, ferry.EINVALID, "request body"},
		{"not an object", "POST", "/api/v1/builds", `["master"]`, 400, ferry.EINVALID, "request body"},
		{"empty body", "POST", "/api/v1/builds", ``, 400, ferry.EINVALID, "empty"},
		{"unknown field", "POST", "/api/v1/builds", `{"branch":"master","bogus":1}`, 400, ferry.EINVALID, "bogus"},
		{"missing branch", "POST", "/api/v1/builds", `{}`, 400, ferry.EINVALID, "branch is required"},
		{"unbuilt branch", "POST", "/api/v1/builds", `{"branch":"other"}`, 400, ferry.EINVALID, "not built"},
		{"unknown branch", "POST", "/api/v1/builds", `{"branch":"nope"}`, 400, ferry.EINVALID, "not built"},
		{"short commit", "POST", "/api/v1/builds", `{"branch":"master","commit":"` + head[:12] + `"}`, 400, ferry.EINVALID, "40-hex"},
		{"upper-case commit", "POST", "/api/v1/builds", `{"branch":"master","commit":"` + strings.ToUpper(head) + `"}`, 400, ferry.EINVALID, "40-hex"},
		{"option as commit", "POST", "/api/v1/builds", `{"branch":"master","commit":"--all"}`, 400, ferry.EINVALID, "40-hex"},
		{"commit not on the branch", "POST", "/api/v1/builds", `{"branch":"master","commit":"` + other + `"}`, 400, ferry.EINVALID, "not on branch master"},
		{"unknown commit", "POST", "/api/v1/builds", `{"branch":"master","commit":"` + strings.Repeat("0123456789", 4) + `"}`, 404, ferry.ENOTFOUND, "not found"},
		{"id not a number", "GET", "/api/v1/builds/abc", ``, 400, ferry.EINVALID, "abc"},
		{"id zero", "GET", "/api/v1/builds/0", ``, 400, ferry.EINVALID, "positive"},
		{"id negative", "GET", "/api/v1/builds/-3", ``, 400, ferry.EINVALID, "positive"},
		{"no such build", "GET", "/api/v1/builds/99999", ``, 404, ferry.ENOTFOUND, "99999"},
		{"logs of no such build", "GET", "/api/v1/builds/99999/logs", ``, 404, ferry.ENOTFOUND, "99999"},
		{"cancel no such build", "POST", "/api/v1/builds/99999/cancel", ``, 404, ferry.ENOTFOUND, "99999"},
		{"cancel a finished build", "POST", "/api/v1/builds/1/cancel", ``, 409, ferry.ECONFLICT, "already succeeded"},
		{"bad state filter", "GET", "/api/v1/builds?state=bogus", ``, 400, ferry.EINVALID, "bogus"},
		{"bad limit", "GET", "/api/v1/builds?limit=-1", ``, 400, ferry.EINVALID, "limit"},
		{"bad log cursor", "GET", "/api/v1/builds/1/logs?after=x", ``, 400, ferry.EINVALID, "after"},
		{"bad event filter", "GET", "/api/v1/events?build=x", ``, 400, ferry.EINVALID, "build"},
		{"unknown route", "GET", "/api/v1/nothing", ``, 404, ferry.ENOTFOUND, "no API route"},
		{"wrong method", "DELETE", "/api/v1/builds/1", ``, 405, ferry.EMETHOD, "answers only GET, HEAD"},
		{"data after the object", "POST", "/api/v1/builds", `{"branch":"master"} {"branch":"master"}`, 400, ferry.EINVALID, "more after its JSON object"},
		{"body over 64 KiB", "POST", "/api/v1/builds", `{"branch":"master","commit":"` + strings.Repeat("0", 65<<10) + `"}`, 413, ferry.ETOOLARGE, "64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, s.URL()+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, resp.StatusCode, body, tc.status)
			}
			if allow := resp.Header.Get("Allow"); (tc.status == 405) != (allow == "GET, HEAD") {
				t.Errorf("Allow = %q, want %q exactly for 405", allow, "GET, HEAD")
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var eb api.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body %s is not JSON: %v", body, err)
			}
			if eb.Code != tc.code || !strings.Contains(eb.Error, tc.message) {
				t.Errorf("error body = %+v, want code %q and a message containing %q", eb, tc.code, tc.message)
			}
		})
	}
	// None of it queued anything.
	if bs := builds(t, s); len(bs) != 1 || bs[0].Commit != head {
		t.Errorf("builds after the bad requests = %d, want only the head's", len(bs))
	}
	if es := events(t, s, "build.queued"); len(es) != 1 {
		t.Errorf("%d build.queued events, want 1", len(es))
	}
}

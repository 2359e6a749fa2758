package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/release"
)

// diffServer speaks the diff route's contract: GET /api/v1/diff?from=&to=
// answers a release.Comparison, an unknown environment a 404 ErrorBody.
func diffServer(t *testing.T, envs map[string]release.Side, history map[[2]string][2][]release.Change) (*httptest.Server, *[]string) {
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/diff" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		from, to := r.URL.Query().Get("from"), r.URL.Query().Get("to")
		for _, e := range []string{from, to} {
			if _, ok := envs[e]; !ok {
				w.WriteHeader(http.StatusNotFound)
				json.NewEncoder(w).Encode(map[string]string{"error": "no environment " + e + " (have dev, prod)", "code": "not_found"})
				return
			}
		}
		h := history[[2]string{from, to}]
		c := release.Comparison{From: envs[from], To: envs[to], Ahead: h[0], Behind: h[1]}
		if c.Ahead == nil {
			c.Ahead = []release.Change{}
		}
		if c.Behind == nil {
			c.Behind = []release.Change{}
		}
		json.NewEncoder(w).Encode(c)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestDiffCommand(t *testing.T) {
	t.Parallel()
	c1 := release.Change{Commit: strings.Repeat("1a", 20), Subject: "fix: birthdays on Feb 29", Author: "Ada Lovelace", AuthorEmail: "ada@example.com", Time: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)}
	c2 := release.Change{Commit: strings.Repeat("2b", 20), Subject: "docs: how to run", Author: "Grace Hopper", Time: time.Date(2024, 2, 28, 9, 0, 0, 0, time.UTC)}
	envs := map[string]release.Side{
		"dev":  {Env: "dev", Commit: c1.Commit},
		"prod": {Env: "prod", Commit: strings.Repeat("3c", 20), Release: "RC20240229_0900"},
		"qa":   {Env: "qa"},
	}
	srv, seen := diffServer(t, envs, map[[2]string][2][]release.Change{
		{"dev", "prod"}: {{c1, c2}, nil},
	})

	stdout, stderr, code := run(t, "diff", "dev", "prod", "--server", srv.URL)
	if code != 0 {
		t.Fatalf("ferry diff dev prod: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"dev runs 1a1a1a1a1a1a; prod runs RC20240229_0900 (3c3c3c3c3c3c)",
		"In dev, not in prod (2):",
		"1a1a1a1a1a1a  fix: birthdays on Feb 29  Ada Lovelace  2024-03-01",
		"2b2b2b2b2b2b  docs: how to run          Grace Hopper  2024-02-28",
		"In prod, not in dev: none",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("ferry diff dev prod printed\n%s\nwant a line containing %q", stdout, want)
		}
	}
	if got := (*seen)[len(*seen)-1]; got != "GET /api/v1/diff?from=dev&to=prod" {
		t.Errorf("request = %q, want GET /api/v1/diff?from=dev&to=prod", got)
	}

	// JSON: the route's body, field for field.
	stdout, stderr, code = run(t, "diff", "dev", "prod", "-o", "json", "--server", srv.URL)
	if code != 0 {
		t.Fatalf("ferry diff -o json: exit %d: %s", code, stderr)
	}
	var got release.Comparison
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("ferry diff -o json: %v\n%s", err, stdout)
	}
	if got.From != envs["dev"] || got.To != envs["prod"] || len(got.Ahead) != 2 || got.Ahead[0] != c1 || got.Ahead[1] != c2 || got.Behind == nil || len(got.Behind) != 0 {
		t.Errorf("ferry diff -o json = %+v, want dev vs prod with c1, c2 ahead and nothing behind", got)
	}
	if stdout, _, code := run(t, "diff", "dev", "prod", "-o", "yaml", "--server", srv.URL); code != 0 || !strings.Contains(stdout, "subject: 'fix: birthdays on Feb 29'") || !strings.Contains(stdout, "release: RC20240229_0900") {
		t.Errorf("ferry diff -o yaml = exit %d\n%s\nwant the comparison in YAML", code, stdout)
	}

	// The other way round, and an environment that runs nothing.
	srv2, _ := diffServer(t, envs, map[[2]string][2][]release.Change{{"prod", "dev"}: {nil, {c1, c2}}, {"qa", "dev"}: {nil, {c1}}})
	if stdout, _, _ := run(t, "diff", "prod", "dev", "--server", srv2.URL); !strings.Contains(stdout, "In prod, not in dev: none") || !strings.Contains(stdout, "In dev, not in prod (2):") {
		t.Errorf("ferry diff prod dev printed\n%s\nwant dev's two commits listed as behind", stdout)
	}
	if stdout, _, _ := run(t, "diff", "qa", "dev", "--server", srv2.URL); !strings.Contains(stdout, "qa runs nothing") {
		t.Errorf("ferry diff qa dev printed\n%s\nwant qa runs nothing", stdout)
	}

	// Mistakes: a misspelled environment (the server's message), the same
	// environment twice, a bad output format.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"diff", "dev", "prdo"}, 1, "no environment prdo"},
		{[]string{"diff", "dev", "dev"}, 2, "two different environments"},
		{[]string{"diff", "dev", "prod", "-o", "xml"}, 2, "unknown output format"},
		{[]string{"diff", "dev"}, 1, "accepts 2 arg(s)"},
	} {
		_, stderr, code := run(t, append(tc.args, "--server", srv.URL)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("ferry %s = exit %d, %q; want exit %d with %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
}

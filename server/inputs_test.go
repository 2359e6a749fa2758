package server

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/ledger"
)

// TestInputsOnEveryEngine runs one table of requests holding NUL bytes or
// invalid UTF-8 against a real server on each ledger engine: every one is
// 400 with the same message on both (on PostgreSQL they were 500s,
// SQLSTATE 22021) and nothing is recorded. A webhook's 100 KiB pusher name
// is stored capped, and the same delivery sent 50 times records one
// event.
func TestInputsOnEveryEngine(t *testing.T) {
	t.Parallel()
	answers := map[string]map[string]string{} // engine → request → answer
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			answers[engine] = oddInputs(t, engine)
		})
	}
	for req, want := range answers["sqlite"] {
		if got, ok := answers["postgres"][req]; ok && got != want {
			t.Errorf("%s: PostgreSQL answers %s, SQLite %s; want the same", req, got, want)
		}
	}
}

func oddInputs(t *testing.T, engine string) map[string]string {
	repo := newRepo(t, "testdata/tiny")
	head := repo.Head()
	extra := ""
	if engine == "postgres" {
		extra = "ledger: " + pgtest.NewDatabase(t)
	}
	runtime := `runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`
	yaml := withTest(tinyConfig(repo.Dir, t.TempDir(), extra), "")
	yaml = strings.Replace(yaml, "runtime: { local: { listen: 127.0.0.1:0 } }", runtime, 1) + "  prod:\n    from: dev\n    " + runtime + "\n"
	yaml = strings.Replace(yaml, "poll: 0 }", "poll: 0, webhookSecret: { env: FERRY_TEST_HOOK_SECRET } }", 1)
	getenv := func(k string) string {
		if k == "FERRY_TEST_HOOK_SECRET" {
			return hookSecret
		}
		return os.Getenv(k)
	}
	s := start(t, yaml, Options{Getenv: getenv})
	if b := waitBuild(t, s, head, time.Minute); b.State != ferry.BuildSucceeded {
		t.Fatalf("build of the head = %s (%s)", b.State, b.Reason)
	}
	if got := s.cfg.Ledger.Engine; got != engine {
		t.Fatalf("server runs on a %s ledger, want %s", got, engine)
	}
	secret := tokenFor(t, s, ferry.RoleAdmin)
	waitDeployed(t, tokenClient(t, s, secret), "dev", head)
	// The deployment is final in the ledger before its succeeded event is
	// written: its events are all in before the requests.
	waitFor(t, 30*time.Second, "dev's deployment.succeeded event", func() bool {
		for _, e := range events(t, s, "") {
			if e.Kind == "deployment.succeeded" && e.Env == "dev" {
				return true
			}
		}
		return false
	})
	eventsBefore := len(events(t, s, ""))

	answers := map[string]string{}
	for _, tc := range []struct {
		method, path, body string
		message            string
	}{
		{"GET", "/api/v1/builds?branch=%00", ``, "query parameter branch contains a NUL byte"},
		{"GET", "/api/v1/builds?branch=%FF", ``, "query parameter branch is not valid UTF-8"},
		{"GET", "/api/v1/events?env=%00", ``, "query parameter env contains a NUL byte"},
		{"GET", "/api/v1/events?kind=%C3", ``, "query parameter kind is not valid UTF-8"},
		{"GET", "/api/v1/deployments?env=pr%00od", ``, "query parameter env contains a NUL byte"},
		{"GET", "/api/v1/status?env=%FF", ``, "query parameter env is not valid UTF-8"},
		{"GET", "/api/v1/dora?env=%00", ``, "query parameter env contains a NUL byte"},
		{"GET", "/api/v1/diff?from=dev&to=%00", ``, "query parameter to contains a NUL byte"},
		{"GET", "/api/v1/envs/%00/releases", ``, "path parameter env contains a NUL byte"},
		{"GET", "/api/v1/envs/pr%FFod/logs", ``, "path parameter env is not valid UTF-8"},
		{"POST", "/api/v1/envs/prod/promote", `{"ref":"RC\u0000x"}`, "request body: ref contains a NUL byte"},
		{"POST", "/api/v1/envs/prod/promote", `{"ref":"dev","reason":"x\u0000"}`, "request body: reason contains a NUL byte"},
		{"POST", "/api/v1/envs/prod/rollback", `{"to":"RC\u0000"}`, "request body: to contains a NUL byte"},
		{"POST", "/api/v1/envs/pr%00od/lock", `{"reason":"audit"}`, "path parameter env contains a NUL byte"},
		{"DELETE", "/api/v1/envs/%FF/lock", ``, "path parameter env is not valid UTF-8"},
		{"POST", "/api/v1/quarantines", `{"ref":"` + head[:7] + `\u0000","reason":"bad"}`, "request body: ref contains a NUL byte"},
		{"POST", "/api/v1/builds", `{"branch":"master","commit":"\u0000"}`, "request body: commit contains a NUL byte"},
		{"POST", "/api/v1/envs/dev/scale", `{"replicas":1,"reason":"\u0000"}`, "request body: reason contains a NUL byte"},
		{"POST", "/api/v1/tokens", `{"name":"ci\u0000","role":"viewer"}`, "request body: name contains a NUL byte"},
		{"DELETE", "/api/v1/tokens/%00", ``, "path parameter name contains a NUL byte"},
	} {
		req, err := http.NewRequest(tc.method, s.URL()+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var eb api.ErrorBody
		_ = json.Unmarshal(raw, &eb)
		what := tc.method + " " + tc.path + " " + tc.body
		if resp.StatusCode != 400 || eb.Code != ferry.EINVALID || eb.Error != tc.message {
			t.Errorf("%s = %d %s, want 400 %q", what, resp.StatusCode, raw, tc.message)
		}
		answers[what] = resp.Status + " " + eb.Error
	}
	if es := events(t, s, ""); len(es) != eventsBefore {
		t.Errorf("refused requests added %d events, want none: %+v", len(es)-eventsBefore, es[:len(es)-eventsBefore])
	}

	// A webhook push whose pusher is named in 100 KiB, sent 50 times
	// with one delivery id: one event, its text cut to the ledger's limit
	// and marked.
	pusher := strings.Repeat("p", 100<<10)
	body := []byte(`{"ref":"refs/heads/master","after":"` + head + `","pusher":"` + pusher + `"}`)
	h := http.Header{"X-Ferry-Signature": {sign(hookSecret, body)}, "X-Ferry-Delivery": {"ci-run-" + engine}}
	for i := range 50 {
		code, answer := postHook(t, s, "generic", h, body)
		if want := map[bool]int{true: http.StatusAccepted, false: http.StatusOK}[i == 0]; code != want {
			t.Fatalf("generic push with a 100 KiB pusher, delivery %d: %d %.200s, want %d", i+1, code, answer, want)
		}
	}
	es := events(t, s, "webhook.")
	if len(es) != 1 {
		t.Fatalf("webhook events after 50 deliveries with one id = %d, want 1", len(es))
	}
	if m := es[0].Message; len(m) > ledger.MaxText || !strings.HasSuffix(m, ledger.TruncatedMark) || !strings.Contains(m, "by ppp") {
		t.Errorf("webhook.push message is %d bytes ending %q, want the pusher cut to at most %d bytes and marked", len(m), m[max(0, len(m)-20):], ledger.MaxText)
	}
	return answers
}

package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

// recorder is the onPush of a test server: it keeps what was queued.
type recorder struct {
	mu     sync.Mutex
	pushes []*Push
	err    error // returned by onPush when set
}

func (r *recorder) onPush(ctx context.Context, p *Push) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.pushes = append(r.pushes, p)
	return nil
}

func (r *recorder) queued() []*Push {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Push(nil), r.pushes...)
}

func newServer(t *testing.T, secrets map[string]string) (*httptest.Server, *recorder, *bytes.Buffer) {
	rec := &recorder{}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	h := Handler(Config{SecretFor: func(p string) []byte { return []byte(secrets[p]) }, OnPush: rec.onPush, Logger: logger})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, rec, &logs
}

func post(t *testing.T, srv *httptest.Server, method, path string, d delivery) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range d.h {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s %s: response %d is not JSON: %q", method, path, resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, body, resp.Header
}

func TestHandler(t *testing.T) {
	secrets := map[string]string{GitHub: string(secret), GitLab: string(secret), Gitea: string(secret), Generic: string(secret)}
	ghPush := load(t, "github-push.json")
	glPush := load(t, "gitlab-push.json")
	gtPush := load(t, "gitea-push.json")
	genRef := load(t, "generic-ref.json")
	big := append([]byte(`{"ref":"refs/heads/master","after":"2f4bd0f3c0a4cd3d1d5b1c09b0ef8e5e4f2e7c51","pad":"`),
		bytes.Repeat([]byte("x"), MaxBodyBytes)...)
	big = append(big, `"}`...)

	for _, tc := range []struct {
		name     string
		method   string
		path     string
		d        delivery
		secrets  map[string]string // nil: all configured
		status   int
		want     map[string]any // fields the JSON answer must have
		errMatch string         // substring of "error"
		branch   string         // the push queued, if any
	}{
		{name: "github push", path: "/hooks/github", d: github("push", ghPush, secret), status: 202,
			want: map[string]any{"accepted": true, "provider": "github", "branch": "master", "commit": "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5",
				"delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}, branch: "master"},
		{name: "gitlab push", path: "/hooks/gitlab", d: gitlab("Push Hook", glPush, string(secret)), status: 202,
			want: map[string]any{"accepted": true, "branch": "master", "commit": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}, branch: "master"},
		{name: "gitea push", path: "/hooks/gitea", d: gitea("push", gtPush, secret), status: 202,
			want: map[string]any{"accepted": true, "branch": "master", "commit": "bffeb74224043ba2feb48d137756c8a9331c449a"}, branch: "master"},
		{name: "generic push", path: "/hooks/generic", d: generic(genRef, secret), status: 202,
			want: map[string]any{"accepted": true, "branch": "master", "commit": "2f4bd0f3c0a4cd3d1d5b1c09b0ef8e5e4f2e7c51"}, branch: "master"},

		{name: "github ping", path: "/hooks/github", d: github("ping", load(t, "github-ping.json"), secret), status: 200,
			want: map[string]any{"accepted": false, "ignored": "ping"}},
		{name: "tag push", path: "/hooks/github", d: github("push", load(t, "github-push-tag.json"), secret), status: 200,
			want: map[string]any{"accepted": false, "ignored": "tag push (v1.2.0)"}},
		{name: "branch deletion", path: "/hooks/gitlab", d: gitlab("Push Hook", load(t, "gitlab-push-delete.json"), string(secret)), status: 200,
			want: map[string]any{"accepted": false, "ignored": "branch deleted", "branch": "feature/lang"}},

		{name: "missing signature", path: "/hooks/github", d: github("push", ghPush, secret).with("X-Hub-Signature-256", ""), status: 401,
			errMatch: "missing X-Hub-Signature-256 header"},
		{name: "wrong signature", path: "/hooks/github", d: github("push", ghPush, secret).with("X-Hub-Signature-256", "sha256="+strings.Repeat("ab", 32)), status: 401,
			errMatch: "does not match"},
		{name: "signature over a different body", path: "/hooks/gitea", d: delivery{gitea("push", genRef, secret).h, gtPush}, status: 401,
			errMatch: "does not match"},
		{name: "wrong secret", path: "/hooks/generic", d: generic(genRef, []byte("guess")), status: 401, errMatch: "does not match"},
		{name: "wrong gitlab token", path: "/hooks/gitlab", d: gitlab("Push Hook", glPush, "guess"), status: 401, errMatch: "X-Gitlab-Token does not match"},
		{name: "empty secret", path: "/hooks/github", d: github("push", ghPush, nil), secrets: map[string]string{GitLab: "x"}, status: 401,
			errMatch: "no webhook secret is configured for github"},
		{name: "signed ping with wrong secret", path: "/hooks/github", d: github("ping", load(t, "github-ping.json"), []byte("guess")), status: 401,
			errMatch: "does not match"},
		{name: "truncated JSON", path: "/hooks/github", d: github("push", ghPush[:200], secret), status: 400, errMatch: "malformed github payload"},
		{name: "non-branch ref", path: "/hooks/generic", d: generic([]byte(`{"ref":"refs/notes/x","after":"2f4bd0f3c0a4cd3d1d5b1c09b0ef8e5e4f2e7c51"}`), secret),
			status: 400, errMatch: "is not a branch"},
		{name: "oversized body", path: "/hooks/generic", d: generic(big, secret), status: 413, errMatch: "larger than 4 MiB"},
		{name: "unknown provider", path: "/hooks/bitbucket", d: github("push", ghPush, secret), status: 404, errMatch: "unknown webhook provider"},
		{name: "no provider", path: "/hooks/", d: github("push", ghPush, secret), status: 404, errMatch: "no such webhook"},
		{name: "nested path", path: "/hooks/github/extra", d: github("push", ghPush, secret), status: 404, errMatch: "no such webhook"},
		{name: "GET", method: "GET", path: "/hooks/github", d: delivery{hdr(), nil}, status: 405, errMatch: "POST"},
		{name: "PUT", method: "PUT", path: "/hooks/generic", d: generic(genRef, secret), status: 405, errMatch: "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := secrets
			if tc.secrets != nil {
				s = tc.secrets
			}
			srv, rec, logs := newServer(t, s)
			method := tc.method
			if method == "" {
				method = "POST"
			}
			status, body, h := post(t, srv, method, tc.path, tc.d)
			if status != tc.status {
				t.Errorf("%s %s = %d %v, want %d", method, tc.path, status, body, tc.status)
			}
			for k, v := range tc.want {
				if body[k] != v {
					t.Errorf("%s %s: answer[%q] = %v, want %v (answer %v)", method, tc.path, k, body[k], v, body)
				}
			}
			if msg, _ := body["error"].(string); !strings.Contains(msg, tc.errMatch) || (tc.errMatch == "") != (msg == "") {
				t.Errorf("%s %s: error %q, want one containing %q", method, tc.path, msg, tc.errMatch)
			}
			queued := rec.queued()
			switch {
			case tc.branch == "" && len(queued) != 0:
				t.Errorf("%s %s: onPush called with %+v, want no call", method, tc.path, queued[0])
			case tc.branch != "" && (len(queued) != 1 || queued[0].Branch != tc.branch):
				t.Errorf("%s %s: onPush calls %v, want one for %s", method, tc.path, queued, tc.branch)
			}
			if status == 405 && h.Get("Allow") != "POST" {
				t.Errorf("405 Allow = %q, want POST", h.Get("Allow"))
			}
			if strings.Contains(logs.String(), string(secret)) {
				t.Errorf("the log shows the secret:\n%s", logs)
			}
			if status == 401 && !strings.Contains(logs.String(), "webhook refused") {
				t.Errorf("a refused webhook was not logged:\n%s", logs)
			}
		})
	}
}

func TestHandlerOnPushError(t *testing.T) {
	srv, rec, logs := newServer(t, map[string]string{Generic: string(secret)})
	d := generic(load(t, "generic-ref.json"), secret)
	for _, tc := range []struct {
		err    error
		status int
		msg    string
	}{
		{ferry.Errorf(ferry.EUNAVAILABLE, "build queue is full"), 503, "build queue is full"},
		{ferry.Errorf(ferry.EINVALID, "repository is not watched"), 400, "repository is not watched"},
		{io.ErrUnexpectedEOF, 500, "internal error"}, // internal details stay in the log
	} {
		rec.mu.Lock()
		rec.err = tc.err
		rec.mu.Unlock()
		status, body, _ := post(t, srv, "POST", "/hooks/generic", d)
		if status != tc.status || body["error"] != tc.msg {
			t.Errorf("onPush error %v: answer %d %v, want %d %q", tc.err, status, body, tc.status, tc.msg)
		}
	}
	if !strings.Contains(logs.String(), io.ErrUnexpectedEOF.Error()) {
		t.Errorf("onPush's internal error is not in the log:\n%s", logs)
	}
}

// openLedger opens a SQLite ledger on path, the real store the server
// hands Handler as its Deliveries.
func openLedger(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	l, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestHandlerReplay: a delivery sent again and again, by each provider, is
// handed to OnPush once; every replay is answered 200 "already received".
// The ledger remembers it across a restart (a new handler on the reopened
// ledger) and for another server on the same ledger. A delivery OnPush
// failed is forgotten, so the sender's retry is acted on. A generic
// delivery without an id cannot be recognised and is taken every time.
func TestHandlerReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	secrets := func(string) []byte { return secret }
	now := func() time.Time { return time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC) }
	serve := func(l Deliveries) (*httptest.Server, *recorder) {
		rec := &recorder{}
		srv := httptest.NewServer(Handler(Config{SecretFor: secrets, OnPush: rec.onPush, Deliveries: l, Now: now}))
		t.Cleanup(srv.Close)
		return srv, rec
	}
	first := openLedger(t, path)
	srv, rec := serve(first)

	deliveries := []struct {
		name, path string
		d          delivery
	}{
		{"github", "/hooks/github", github("push", load(t, "github-push.json"), secret)},
		{"gitlab", "/hooks/gitlab", gitlab("Push Hook", load(t, "gitlab-push.json"), string(secret))},
		{"gitlab with Idempotency-Key", "/hooks/gitlab", gitlab("Push Hook", load(t, "gitlab-push.json"), string(secret)).with("Idempotency-Key", "908a6d9e-45fd-46c8-97e6-c4f350f219dd")},
		{"gitea", "/hooks/gitea", gitea("push", load(t, "gitea-push.json"), secret)},
		{"generic", "/hooks/generic", generic(load(t, "generic-ref.json"), secret).with("X-Ferry-Delivery", "ci-run-42")},
	}
	for _, tc := range deliveries {
		before := len(rec.queued())
		for i := range 50 {
			status, body, _ := post(t, srv, "POST", tc.path, tc.d)
			switch {
			case i == 0 && (status != 202 || body["accepted"] != true):
				t.Errorf("%s: first delivery = %d %v, want 202 accepted", tc.name, status, body)
			case i > 0 && (status != 200 || body["accepted"] != false || body["ignored"] != AlreadyReceived || body["delivery"] == ""):
				t.Errorf("%s: replay %d = %d %v, want 200 ignored %q naming the delivery", tc.name, i, status, body, AlreadyReceived)
			}
		}
		if n := len(rec.queued()) - before; n != 1 {
			t.Errorf("%s: 50 deliveries with one id called OnPush %d times, want once", tc.name, n)
		}
	}

	// Another server sharing the ledger, and this one after a restart,
	// know them all.
	other, otherRec := serve(openLedger(t, path))
	first.Close()
	restarted, restartedRec := serve(openLedger(t, path))
	for _, tc := range deliveries {
		for _, s := range []*httptest.Server{other, restarted} {
			if status, body, _ := post(t, s, "POST", tc.path, tc.d); status != 200 || body["ignored"] != AlreadyReceived {
				t.Errorf("%s after a restart or on another server = %d %v, want 200 %q", tc.name, status, body, AlreadyReceived)
			}
		}
	}
	if n := len(otherRec.queued()) + len(restartedRec.queued()); n != 0 {
		t.Errorf("replays after a restart or on another server called OnPush %d times, want none", n)
	}

	// OnPush fails: the delivery is forgotten, and its retry is taken.
	retry := github("push", load(t, "github-push.json"), secret).with("X-GitHub-Delivery", "retried-delivery")
	restartedRec.mu.Lock()
	restartedRec.err = ferry.Errorf(ferry.EUNAVAILABLE, "build queue is full")
	restartedRec.mu.Unlock()
	if status, body, _ := post(t, restarted, "POST", "/hooks/github", retry); status != 503 {
		t.Errorf("delivery OnPush refused = %d %v, want 503", status, body)
	}
	restartedRec.mu.Lock()
	restartedRec.err = nil
	restartedRec.mu.Unlock()
	if status, body, _ := post(t, restarted, "POST", "/hooks/github", retry); status != 202 {
		t.Errorf("retry of a delivery OnPush refused = %d %v, want 202", status, body)
	}

	// Without an id, nothing tells a replay from a new push.
	anonymous := generic(load(t, "generic-ref.json"), secret)
	for range 3 {
		if status, body, _ := post(t, restarted, "POST", "/hooks/generic", anonymous); status != 202 {
			t.Errorf("generic delivery without an id = %d %v, want 202", status, body)
		}
	}
	if n := len(restartedRec.queued()); n != 4 {
		t.Errorf("OnPush called %d times after the restart, want 4 (the retry and 3 without an id)", n)
	}

	// A delivery id the ledger cannot take is refused as malformed.
	odd := github("push", load(t, "github-push.json"), secret).with("X-GitHub-Delivery", strings.Repeat("x", 300))
	if status, body, _ := post(t, restarted, "POST", "/hooks/github", odd); status != 400 || !strings.Contains(body["error"].(string), "delivery id") {
		t.Errorf("a 300-byte delivery id = %d %v, want 400 naming the delivery id", status, body)
	}
}

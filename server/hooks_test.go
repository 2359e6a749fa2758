package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

const hookSecret = "s3cret-for-the-hooks-test"

// TestWebhooks: with polling off, only an authenticated push builds. Bad
// or missing signatures are refused with 401 and leave no trace but the
// refusal; a push to a branch ferry does not build is acknowledged and
// ignored.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	a := repo.Head()
	yaml := withTest(tinyConfig(repo.Dir, t.TempDir(), ""), "")
	yaml = strings.Replace(yaml, "poll: 0 }", "poll: 0, webhookSecret: { env: FERRY_TEST_HOOK_SECRET } }", 1)
	getenv := func(k string) string {
		if k == "FERRY_TEST_HOOK_SECRET" {
			return hookSecret
		}
		return os.Getenv(k)
	}
	s := start(t, yaml, Options{Getenv: getenv})
	if b := waitBuild(t, s, a, time.Minute); b.State != ferry.BuildSucceeded {
		t.Fatalf("first build = %s (%s)", b.State, b.Reason)
	}

	repo.Write("b.txt", "b")
	b := repo.CommitAll("commit B")
	payload := githubPush(t, "refs/heads/master", a, b)

	for _, tc := range []struct {
		name   string
		header http.Header
		body   []byte
	}{
		{"wrong signature", http.Header{"X-Hub-Signature-256": {"sha256=" + strings.Repeat("ab", 32)}}, payload},
		{"missing signature", http.Header{}, payload},
		{"signed with another secret", http.Header{"X-Hub-Signature-256": {sign("not-the-secret", payload)}}, payload},
		{"body changed after signing", http.Header{"X-Hub-Signature-256": {sign(hookSecret, payload)}}, bytes.Replace(payload, []byte(`"forced": false`), []byte(`"forced": true `), 1)},
		{"signature without prefix", http.Header{"X-Hub-Signature-256": {strings.TrimPrefix(sign(hookSecret, payload), "sha256=")}}, payload},
	} {
		tc.header.Set("X-GitHub-Event", "push")
		code, body := postHook(t, s, "github", tc.header, tc.body)
		if code != http.StatusUnauthorized {
			t.Errorf("%s: status %d %s, want 401", tc.name, code, body)
		}
	}
	code, body := postHook(t, s, "generic", http.Header{"X-Ferry-Signature": {sign("not-the-secret", genericPush(b))}}, genericPush(b))
	if code != http.StatusUnauthorized {
		t.Errorf("generic with a bad signature: status %d %s, want 401", code, body)
	}
	if es := events(t, s, "webhook."); len(es) != 0 {
		t.Errorf("refused deliveries left events %+v, want none", es)
	}
	// Nothing fetches B: the refused deliveries queued nothing.
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := s.Ledger().BuildByCommit(t.Context(), "tiny", b); err == nil {
			t.Fatal("a refused delivery got commit B built")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A correctly signed GitHub push builds B.
	h := http.Header{"X-Hub-Signature-256": {sign(hookSecret, payload)}, "X-Github-Event": {"push"}, "X-Github-Delivery": {"d-1"}}
	if code, body := postHook(t, s, "github", h, payload); code != http.StatusAccepted {
		t.Fatalf("signed github push: status %d %s, want 202", code, body)
	}
	bb := waitBuild(t, s, b, time.Minute)
	if bb.State != ferry.BuildSucceeded || bb.Trigger != "webhook:github" {
		t.Errorf("build of B = %s (%s) triggered by %q, want succeeded by webhook:github", bb.State, bb.Reason, bb.Trigger)
	}
	if es := events(t, s, "webhook.push"); len(es) != 1 || !strings.Contains(es[0].Message, ferry.ShortSHA(b)) {
		t.Errorf("webhook.push events = %+v, want one naming %s", es, ferry.ShortSHA(b))
	}
	// The same delivery 50 times more (a sender's retries, a replay):
	// each is answered "already received" and records nothing.
	before, buildsBefore := len(events(t, s, "webhook.")), len(builds(t, s))
	for i := range 50 {
		code, body := postHook(t, s, "github", h, payload)
		if code != http.StatusOK || !strings.Contains(body, "already received") {
			t.Fatalf("replay %d of delivery d-1: status %d %s, want 200 already received", i+1, code, body)
		}
	}
	if es := events(t, s, "webhook."); len(es) != before {
		t.Errorf("50 replays of one delivery added %d webhook events, want none: %+v", len(es)-before, es[:len(es)-before])
	}
	if n := len(builds(t, s)); n != buildsBefore {
		t.Errorf("50 replays of one delivery: %d builds, want %d", n, buildsBefore)
	}

	// The generic webhook, signed with X-Ferry-Signature, builds C.
	repo.Write("c.txt", "c")
	c := repo.CommitAll("commit C")
	gp := genericPush(c)
	if code, body := postHook(t, s, "generic", http.Header{"X-Ferry-Signature": {sign(hookSecret, gp)}}, gp); code != http.StatusAccepted {
		t.Fatalf("signed generic push: status %d %s, want 202", code, body)
	}
	if bc := waitBuild(t, s, c, time.Minute); bc.State != ferry.BuildSucceeded || bc.Trigger != "webhook:generic" {
		t.Errorf("build of C = %s (%s) triggered by %q, want succeeded by webhook:generic", bc.State, bc.Reason, bc.Trigger)
	}

	// A push to a branch ferry does not build: acknowledged, recorded as
	// ignored, nothing built.
	repo.Git(time.Time{}, "checkout", "-q", "-b", "feature")
	repo.Write("d.txt", "d")
	d := repo.CommitAll("commit D on feature")
	fp := githubPush(t, "refs/heads/feature", c, d)
	h = http.Header{"X-Hub-Signature-256": {sign(hookSecret, fp)}, "X-Github-Event": {"push"}}
	if code, body := postHook(t, s, "github", h, fp); code != http.StatusAccepted {
		t.Errorf("push to feature: status %d %s, want 202", code, body)
	}
	if es := events(t, s, "webhook.ignored"); len(es) != 1 || !strings.Contains(es[0].Message, "feature") {
		t.Errorf("webhook.ignored events = %+v, want one naming the branch", es)
	}
	if _, err := s.Ledger().BuildByCommit(t.Context(), "tiny", d); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("build of D on feature: %v, want none", err)
	}
	if n := len(builds(t, s)); n != 3 {
		t.Errorf("%d builds, want 3 (A, B, C)", n)
	}
}

// githubPush is GitHub's push payload (webhook/testdata) for ref from
// before to after.
func githubPush(t *testing.T, ref, before, after string) []byte {
	t.Helper()
	data, err := os.ReadFile("../webhook/testdata/github-push.json")
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	p["ref"], p["before"], p["after"] = ref, before, after
	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func genericPush(commit string) []byte {
	return []byte(`{"ref":"refs/heads/master","after":"` + commit + `"}`)
}

// sign is the sha256= HMAC header value GitHub and the generic hook use.
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func postHook(t *testing.T, s *Server, provider string, h http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/hooks/"+provider, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

package notification

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

// receiver is a real HTTP server on loopback that checks each request's
// signature as a receiver would, and answers the statuses it is given
// (then 200).
type receiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server

	mu       sync.Mutex
	statuses []int
	got      []string // bodies of the requests whose signature was good
	bad      int      // requests with a wrong signature
	calls    int
}

func newReceiver(t *testing.T, secret string, statuses ...int) *receiver {
	r := &receiver{t: t, secret: []byte(secret), statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mac := hmac.New(sha256.New, r.secret)
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls++
		if !hmac.Equal([]byte(req.Header.Get("X-Ferry-Signature")), []byte(want)) || req.Header.Get("X-Ferry-Delivery") == "" {
			r.bad++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if len(r.statuses) > 0 {
			st := r.statuses[0]
			r.statuses = r.statuses[1:]
			if st != http.StatusOK {
				http.Error(w, "not now", st)
				return
			}
		}
		r.got = append(r.got, string(body))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) bodies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

type fixture struct {
	t    *testing.T
	path string
	l    ledger.Store
	now  time.Time
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), "ledger.db"), now: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	f.open()
	return f
}

func (f *fixture) open() {
	l, err := sqlite.Open(context.Background(), f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { l.Close() })
	f.l = l
}

func (f *fixture) event(kind, env, msg string) {
	f.t.Helper()
	if err := f.l.AddEvent(context.Background(), &ferry.Event{App: "app", Time: f.now, Actor: "alice", Kind: kind, Env: env, Message: msg, Reason: "weekly"}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) dispatcher(rs ...Receiver) *Dispatcher {
	return &Dispatcher{App: "app", Ledger: f.l, Receivers: rs, Now: func() time.Time { return f.now }, MaxAttempts: 3, Backoff: time.Second}
}

// round is what Run does once, twice: an event is read one round after
// it was first seen.
func (f *fixture) round(d *Dispatcher) {
	f.t.Helper()
	for range 2 {
		if err := d.Scan(context.Background()); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := d.Deliver(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) notifications() []*ferry.Notification {
	f.t.Helper()
	ns, err := f.l.Notifications(context.Background(), ledger.NotificationFilter{App: "app"})
	if err != nil {
		f.t.Fatal(err)
	}
	return ns
}

// TestDeliveredSignedAndRouted: each release event reaches the receivers
// routed to its environment and topic, signed, in ferry's JSON or Slack's
// format; other events and environments are not sent.
func TestDeliveredSignedAndRouted(t *testing.T) {
	f := newFixture(t)
	prod := newReceiver(t, "s3cret")
	slack := newReceiver(t, "other")
	d := f.dispatcher(
		Receiver{Name: "prod-json", URL: prod.srv.URL, Secret: []byte("s3cret"), Envs: []string{"prod"}},
		Receiver{Name: "chat", URL: slack.srv.URL, Format: "slack", Secret: []byte("other"), Topics: []string{ferry.TopicLocked}},
	)
	f.event("release.pending", "prod", "release request 1: 1a2b3c4d5e6f to prod awaits 1 approval(s)")
	f.event("build.succeeded", "", "build 3 succeeded")
	f.event("deployment.succeeded", "prod", "promote 7 to prod: 1a2b3c4d5e6f succeeded")
	f.event("deployment.succeeded", "dev", "deploy 6 to dev: 1a2b3c4d5e6f succeeded")
	f.event("env.locked", "dev", "dev locked")
	f.round(d)

	got := prod.bodies()
	if len(got) != 2 || prod.bad != 0 {
		t.Fatalf("prod receiver got %d (%d badly signed), want 2: %q", len(got), prod.bad, got)
	}
	var p Payload
	if err := json.Unmarshal([]byte(got[1]), &p); err != nil || p.Topic != ferry.TopicReleased || p.Env != "prod" || p.Actor != "alice" || p.Reason != "weekly" || p.App != "app" {
		t.Errorf("released payload = %+v, %v", p, err)
	}
	if s := slack.bodies(); len(s) != 1 || !strings.Contains(s[0], `{"text":"*app* environment locked: dev locked`) {
		t.Errorf("slack receiver got %q", s)
	}
	for _, n := range f.notifications() {
		if n.State != ferry.NotificationDelivered || n.Attempts != 1 {
			t.Errorf("notification %d (%s) = %s after %d attempts, want delivered at once", n.ID, n.Topic, n.State, n.Attempts)
		}
	}
	// A later round sends nothing again.
	f.round(d)
	if n := len(prod.bodies()); n != 2 {
		t.Errorf("after a second round prod got %d, want still 2", n)
	}
}

// TestRetriedWithBackoff: a receiver that fails twice gets the
// notification at the third attempt, each attempt waiting for its
// backoff; one that never answers 2xx is given up after MaxAttempts,
// recorded failed with its last error. Neither blocks the other.
func TestRetriedWithBackoff(t *testing.T) {
	f := newFixture(t)
	flaky := newReceiver(t, "k", 503, 503)
	down := newReceiver(t, "k", 500, 500, 500, 500)
	d := f.dispatcher(Receiver{Name: "flaky", URL: flaky.srv.URL, Secret: []byte("k")}, Receiver{Name: "down", URL: down.srv.URL, Secret: []byte("k")})
	f.event("release.approved", "prod", "bob approved release request 1")
	f.round(d)
	f.round(d) // not due yet: the backoff has not passed
	if flaky.calls != 1 || down.calls != 1 {
		t.Fatalf("calls before the backoff = %d, %d; want 1 each", flaky.calls, down.calls)
	}
	for _, step := range []time.Duration{time.Second, 2 * time.Second} {
		f.now = f.now.Add(step)
		f.round(d)
	}
	byName := map[string]*ferry.Notification{}
	for _, n := range f.notifications() {
		byName[n.Receiver] = n
	}
	if n := byName["flaky"]; n.State != ferry.NotificationDelivered || n.Attempts != 3 || len(flaky.bodies()) != 1 {
		t.Errorf("flaky = %s after %d attempts (%d received), want delivered at the third", n.State, n.Attempts, len(flaky.bodies()))
	}
	if n := byName["down"]; n.State != ferry.NotificationFailed || n.Attempts != 3 || !strings.Contains(n.LastError, "down answered 500 Internal Server Error") {
		t.Errorf("down = %s after %d attempts (%q), want failed after 3", n.State, n.Attempts, n.LastError)
	}
	f.now = f.now.Add(time.Hour)
	f.round(d)
	if down.calls != 3 {
		t.Errorf("down was called %d times, want 3: a failed notification is not sent again", down.calls)
	}
}

// TestUnreachableReceiver: a receiver that is not listening is an error
// recorded without its URL, and retried.
func TestUnreachableReceiver(t *testing.T) {
	f := newFixture(t)
	gone := newReceiver(t, "k")
	url := gone.srv.URL + "/secret-token-in-path"
	gone.srv.Close()
	d := f.dispatcher(Receiver{Name: "gone", URL: url, Secret: []byte("k")})
	f.event("env.locked", "prod", "prod locked")
	f.round(d)
	n := f.notifications()[0]
	if n.State != ferry.NotificationPending || n.Attempts != 1 || !strings.Contains(n.LastError, "post to gone") || strings.Contains(n.LastError, "secret-token") {
		t.Errorf("unreachable = %s after %d (%q), want pending with the receiver named, not its URL", n.State, n.Attempts, n.LastError)
	}
}

// TestCrashBetweenEventAndDelivery: notifications recorded by one
// dispatcher that stopped before sending are sent by the next, on a
// reopened ledger, once; events of before the crash that were not yet
// read are read then.
func TestCrashBetweenEventAndDelivery(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t, "k")
	r := Receiver{Name: "ops", URL: rcv.srv.URL, Secret: []byte("k")}
	f.event("release.pending", "prod", "release request 1 awaits approval")
	first := f.dispatcher(r)
	for range 2 {
		if err := first.Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	f.event("env.locked", "prod", "prod locked") // after the last read: not yet in the outbox
	// Crash: the first dispatcher never delivers; the ledger is reopened.
	f.l.Close()
	f.open()
	if n := len(rcv.bodies()); n != 0 {
		t.Fatalf("receiver got %d before any delivery", n)
	}
	f.round(f.dispatcher(r))
	got := rcv.bodies()
	if len(got) != 2 || !strings.Contains(got[0], "pending-approval") || !strings.Contains(got[1], `"topic":"locked"`) {
		t.Fatalf("after the restart the receiver got %q, want the pending approval and the lock, once each", got)
	}
}

// TestDriftDelivered: the drift check's events reach a receiver routed
// to the drift topic, signed, the fix in the text, and not one routed to
// releases only.
func TestDriftDelivered(t *testing.T) {
	f := newFixture(t)
	ops := newReceiver(t, "k")
	rel := newReceiver(t, "k")
	d := f.dispatcher(
		Receiver{Name: "ops", URL: ops.srv.URL, Format: "slack", Secret: []byte("k"), Topics: []string{ferry.TopicDrift}},
		Receiver{Name: "releases", URL: rel.srv.URL, Secret: []byte("k"), Topics: []string{ferry.TopicReleased}},
	)
	f.event("drift.found", "prod", "drift in prod: registry tag live: want sha256:1, got sha256:2; fix: ferry rollback prod --to RC1")
	f.event("drift.resolved", "prod", "drift resolved in prod: registry tag live: want sha256:1, got it (was sha256:2)")
	f.round(d)
	got := ops.bodies()
	if len(got) != 2 || ops.bad != 0 {
		t.Fatalf("ops got %d (%d badly signed), want 2: %q", len(got), ops.bad, got)
	}
	if !strings.Contains(got[0], "*app* drift check: drift in prod: registry tag live") || !strings.Contains(got[0], "fix: ferry rollback prod --to RC1") {
		t.Errorf("drift found sent as %q", got[0])
	}
	if !strings.Contains(got[1], "drift resolved in prod") {
		t.Errorf("drift resolved sent as %q", got[1])
	}
	if n := len(rel.bodies()); n != 0 {
		t.Errorf("the releases-only receiver got %d drift notifications", n)
	}
	for _, n := range f.notifications() {
		if n.Topic != ferry.TopicDrift || n.Env != "prod" || n.State != ferry.NotificationDelivered {
			t.Errorf("notification %d = %s %s %s, want drift prod delivered", n.ID, n.Topic, n.Env, n.State)
		}
	}
}

func TestTopicOf(t *testing.T) {
	for _, tt := range []struct {
		kind, msg, want string
	}{
		{"release.pending", "", ferry.TopicPendingApproval},
		{"release.approved", "", ferry.TopicApproved},
		{"deployment.succeeded", "promote 7 to prod: abc succeeded", ferry.TopicReleased},
		{"deployment.succeeded", "rollback 8 to prod: abc succeeded", ferry.TopicRolledBack},
		{"deployment.succeeded", "auto-rollback 9 to prod: abc succeeded", ferry.TopicRolledBack},
		{"deployment.succeeded", "deploy 6 to dev: abc succeeded", ""},
		{"deployment.failed", "promote 7 to prod: abc failed", ferry.TopicFailed},
		{"deployment.rolled-back", "", ferry.TopicFailed},
		{"env.locked", "", ferry.TopicLocked},
		{"canary.paused", "canary of promote 7 to prod: abc paused at 5%", ferry.TopicCanaryPaused},
		{"canary.aborted", "", ""}, // the deployment.failed of the same abort tells
		{"env.unlocked", "", ""},
		{"drift.found", "drift in prod: registry tag live: want sha256:1, got sha256:2; fix: ferry rollback prod --to RC1", ferry.TopicDrift},
		{"drift.resolved", "drift resolved in prod: registry tag live: want sha256:1, got it (was sha256:2)", ferry.TopicDrift},
		{"build.failed", "", ""},
	} {
		got, ok := TopicOf(ferry.Event{Kind: tt.kind, Message: tt.msg})
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("TopicOf(%s %q) = %q, %v; want %q", tt.kind, tt.msg, got, ok, tt.want)
		}
	}
}

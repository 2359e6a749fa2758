package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// TestEveryCommitRecorded: 30 commits pushed to master within 10 s, seen
// by polls 200 ms apart, are all in the ledger: each built, or superseded
// by a newer head that its reason names, and none left queued or running.
func TestEveryCommitRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := newRepo(t, "testdata/tiny")
	first := repo.Head()
	yaml := strings.Replace(tinyConfig(repo.Dir, t.TempDir(), ""), "poll: 0", "poll: 200ms", 1)
	s := start(t, yaml, Options{})
	if b := waitBuild(t, s, first, 3*time.Minute); b.State != ferry.BuildSucceeded {
		t.Fatalf("first build = %s: %s", b.State, b.Reason)
	}

	const pushes = 30
	var pushed []string // oldest first
	began := time.Now()
	for i := range pushes {
		repo.Write("n.txt", fmt.Sprint(i))
		pushed = append(pushed, repo.CommitAll(fmt.Sprintf("push %d", i)))
		time.Sleep(time.Until(began.Add(time.Duration(i+1) * 10 * time.Second / pushes)))
	}
	t.Logf("%d pushes in %s", pushes, time.Since(began).Round(time.Millisecond))
	head := pushed[len(pushed)-1]
	if b := waitBuild(t, s, head, 3*time.Minute); b.State != ferry.BuildSucceeded {
		t.Fatalf("the head's build = %s: %s", b.State, b.Reason)
	}
	waitFor(t, 3*time.Minute, "no build queued or running", func() bool {
		bs, err := s.Ledger().Builds(ctx, ledger.BuildFilter{App: "tiny", States: []ferry.BuildState{ferry.BuildQueued, ferry.BuildRunning}})
		return err == nil && len(bs) == 0
	})

	built, superseded := 0, 0
	for i, sha := range pushed {
		b, err := s.Ledger().BuildByCommit(ctx, "tiny", sha)
		if err != nil {
			t.Errorf("push %d (%s): no build recorded: %v", i, ferry.ShortSHA(sha), err)
			continue
		}
		switch b.State {
		case ferry.BuildSucceeded:
			built++
		case ferry.BuildSuperseded:
			superseded++
			if !slices.ContainsFunc(pushed[i+1:], func(newer string) bool {
				return strings.Contains(b.Reason, "superseded by "+ferry.ShortSHA(newer))
			}) {
				t.Errorf("push %d (%s) superseded with reason %q, want it to name a newer commit", i, ferry.ShortSHA(sha), b.Reason)
			}
			if b.Subject != fmt.Sprintf("push %d", i) || b.Branch != "master" {
				t.Errorf("push %d recorded as %q on %q, want its subject on master", i, b.Subject, b.Branch)
			}
		default:
			t.Errorf("push %d (%s) = %s (%s), want succeeded or superseded", i, ferry.ShortSHA(sha), b.State, b.Reason)
		}
	}
	t.Logf("%d pushes: %d built, %d superseded", pushes, built, superseded)
	if built+superseded != pushes {
		t.Errorf("%d built + %d superseded, want all %d pushes accounted for", built, superseded, pushes)
	}
	// Whether a poll saw several commits at once (a build.arrivals event)
	// or each saw one and the queue superseded them depends on timing;
	// TestWebhookPushRecordsEveryCommit holds the event.
	// One build per commit: the ledger holds the first and the 30 pushes.
	all, err := s.Ledger().Builds(ctx, ledger.BuildFilter{App: "tiny", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != pushes+1 {
		t.Errorf("%d builds in the ledger, want %d (one per commit)", len(all), pushes+1)
	}
	// The list is newest first, in history order: the head on top.
	if len(all) > 0 && all[0].Commit != head {
		t.Errorf("newest build is %s, want the head %s", ferry.ShortSHA(all[0].Commit), ferry.ShortSHA(head))
	}
}

// TestWebhookPushRecordsEveryCommit: one webhook delivery for a push of
// five commits (ferry polls only when told) records all five: the head
// built, the four others superseded by it, and one build.arrivals event.
func TestWebhookPushRecordsEveryCommit(t *testing.T) {
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
	if b := waitBuild(t, s, a, 3*time.Minute); b.State != ferry.BuildSucceeded {
		t.Fatalf("first build = %s (%s)", b.State, b.Reason)
	}
	var pushed []string
	for i := range 5 {
		repo.Write("n.txt", fmt.Sprint(i))
		pushed = append(pushed, repo.CommitAll(fmt.Sprintf("push %d", i)))
	}
	head := pushed[len(pushed)-1]
	payload := githubPush(t, "refs/heads/master", a, head)
	h := http.Header{"X-GitHub-Event": {"push"}, "X-GitHub-Delivery": {"d-arrivals"}, "X-Hub-Signature-256": {sign(hookSecret, payload)}}
	if code, body := postHook(t, s, "github", h, payload); code != http.StatusAccepted {
		t.Fatalf("github push: status %d %s, want 202", code, body)
	}
	if b := waitBuild(t, s, head, 3*time.Minute); b.State != ferry.BuildSucceeded || b.Trigger != "webhook:github" {
		t.Fatalf("head's build = %s (%s) by %q, want succeeded by webhook:github", b.State, b.Reason, b.Trigger)
	}
	for i, sha := range pushed[:4] {
		b, err := s.Ledger().BuildByCommit(context.Background(), "tiny", sha)
		if err != nil || b.State != ferry.BuildSuperseded || !strings.Contains(b.Reason, "superseded by "+ferry.ShortSHA(head)) || b.Trigger != "webhook:github" {
			t.Errorf("push %d = %+v, %v; want superseded by the head %s, triggered by webhook:github", i, b, err, ferry.ShortSHA(head))
		}
	}
	es := events(t, s, "build.arrivals")
	if len(es) != 1 || !strings.Contains(es[0].Reason, "5 new commits on master") {
		t.Errorf("build.arrivals events = %+v, want one counting 5 new commits", es)
	}
}

package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/sqlite"
	"github.com/ferryhq/ferry/notify"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// followed is a build in a real SQLite ledger with a change broadcast.
type followed struct {
	t       *testing.T
	store   *sqlite.Store
	changed *notify.Broadcast
	id      int64
}

// newFollowed records a running build with steps (none when steps is
// false) and n log lines.
func newFollowed(t *testing.T, steps bool, n int) *followed {
	t.Helper()
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b := &ferry.Build{App: "app", Commit: strings.Repeat("a", 40), Branch: "master", State: ferry.BuildQueued, CreatedAt: t0}
	if err := store.CreateBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	f := &followed{t: t, store: store, changed: notify.New(), id: b.ID}
	f.transition(ferry.BuildQueued, ferry.BuildRunning)
	if steps {
		f.step("checkout", ferry.StepSucceeded)
	}
	f.lines(n)
	return f
}

func (f *followed) lines(n int) {
	f.t.Helper()
	if n == 0 {
		return
	}
	ls := make([]ferry.LogLine, n)
	for i := range ls {
		ls[i] = ferry.LogLine{Step: "test", Time: t0, Text: "line"}
	}
	if err := f.store.AppendLog(context.Background(), f.id, ls); err != nil {
		f.t.Fatal(err)
	}
}

func (f *followed) step(name string, st ferry.StepState) {
	f.t.Helper()
	if err := f.store.SaveStep(context.Background(), ferry.Step{BuildID: f.id, Seq: 1, Name: name, State: st, Attempts: 1}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *followed) transition(from, to ferry.BuildState) {
	f.t.Helper()
	if err := f.store.TransitionBuild(context.Background(), f.id, from, to, "", t0); err != nil {
		f.t.Fatal(err)
	}
}

// recorder writes down what Follow tells it, one string a call, and
// sends each to heard when that is set. Idle fails with idleErr from the
// idleFails-th call on.
type recorder struct {
	got       []string
	heard     chan string
	idles     int
	idleFails int
	idleErr   error
}

func (r *recorder) note(s string) {
	r.got = append(r.got, s)
	if r.heard != nil {
		r.heard <- s
	}
}

func (r *recorder) Read(lines []ferry.LogLine, b *ferry.Build, stepsChanged bool) error {
	s := "read -"
	if len(lines) > 0 {
		s = fmt.Sprintf("read %d..%d", lines[0].Seq, lines[len(lines)-1].Seq)
	}
	if stepsChanged {
		s += " +steps"
	}
	r.note(s)
	return nil
}

func (r *recorder) End(b *ferry.Build) error {
	r.note("end " + string(b.State))
	return nil
}

func (r *recorder) Idle() error {
	r.idles++
	r.note("idle")
	if r.idleFails > 0 && r.idles >= r.idleFails {
		return r.idleErr
	}
	return nil
}

// TestFollowStored: what Follow reads of a log already stored, and when it
// ends without waiting.
func TestFollowStored(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps bool
		lines int
		final bool
		after int64
		live  bool
		want  []string
	}{
		{"once, from a line on", true, 3, false, 1, false, []string{"read 2..3 +steps", "end running"}},
		{"once, after the last line", true, 3, false, 3, false, []string{"read - +steps", "end running"}},
		{"once, no steps", false, 1, false, 0, false, []string{"read 1..1", "end running"}},
		{"once, no lines", true, 0, false, 0, false, []string{"read - +steps", "end running"}},
		{"once, more than a page", true, ledger.MaxLogLimit + 2, false, 0, false,
			[]string{"read 1..10000 +steps", "read 10001..10002", "end running"}},
		{"live, final and drained", true, 3, true, 0, true, []string{"read 1..3 +steps", "read -", "end failed"}},
		{"live, final, nothing new", true, 3, true, 3, true, []string{"read - +steps", "end failed"}},
		{"once, final", true, 2, true, 0, false, []string{"read 1..2 +steps", "read -", "end failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFollowed(t, tc.steps, tc.lines)
			if tc.final {
				f.transition(ferry.BuildRunning, ferry.BuildFailed)
			}
			rec := &recorder{}
			err := ledger.Follow(t.Context(), f.store, ledger.LogFollow{Build: f.id, After: tc.after, Live: tc.live, Changed: f.changed.Wait}, rec)
			if err != nil || !slices.Equal(rec.got, tc.want) {
				t.Errorf("Follow(%s) = %v, heard %q; want nil, %q", tc.name, err, rec.got, tc.want)
			}
		})
	}
}

// TestFollowLive: a live follower hears each change the broadcast
// announces, and ends once the build is final and drained.
func TestFollowLive(t *testing.T) {
	f := newFollowed(t, true, 1)
	rec := &recorder{heard: make(chan string, 10)}
	done := make(chan error, 1)
	go func() {
		done <- ledger.Follow(t.Context(), f.store, ledger.LogFollow{Build: f.id, Live: true, Changed: f.changed.Wait, Heartbeat: time.Hour}, rec)
	}()
	hear := func(want string) {
		t.Helper()
		select {
		case got := <-rec.heard:
			if got != want {
				t.Fatalf("heard %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("heard nothing within 5s, want %q", want)
		}
	}
	hear("read 1..1 +steps")
	f.lines(2)
	f.changed.Notify()
	hear("read 2..3")
	f.step("checkout", ferry.StepFailed)
	f.changed.Notify()
	hear("read - +steps")
	f.lines(1)
	f.transition(ferry.BuildRunning, ferry.BuildFailed)
	f.changed.Notify()
	hear("read 4..4")
	hear("read -")
	hear("end failed")
	if err := <-done; err != nil {
		t.Errorf("Follow = %v, want nil once the build ended", err)
	}
}

// endsBetweenReads is a ledger in which the build gets its last line and
// ends between Follow's first read of the lines and its read of the build.
type endsBetweenReads struct {
	*followed
	reads int
}

func (e *endsBetweenReads) Logs(ctx context.Context, id, after int64, limit int) ([]ferry.LogLine, error) {
	return e.store.Logs(ctx, id, after, limit)
}

func (e *endsBetweenReads) Build(ctx context.Context, id int64) (*ferry.Build, error) {
	if e.reads++; e.reads == 1 {
		e.lines(1)
		e.transition(ferry.BuildRunning, ferry.BuildSucceeded)
	}
	return e.store.Build(ctx, id)
}

// TestFollowDrainsAnEndedBuild: a line appended just before the build
// ended, after Follow read the lines, still reaches the follower.
func TestFollowDrainsAnEndedBuild(t *testing.T) {
	f := newFollowed(t, true, 1)
	rec := &recorder{}
	err := ledger.Follow(t.Context(), &endsBetweenReads{followed: f}, ledger.LogFollow{Build: f.id, Live: true, Changed: f.changed.Wait}, rec)
	if want := []string{"read 1..1 +steps", "read 2..2", "read -", "end succeeded"}; err != nil || !slices.Equal(rec.got, want) {
		t.Errorf("Follow = %v, heard %q; want nil, %q", err, rec.got, want)
	}
}

// TestFollowStops: a follower's error, the end of ctx and a missing
// broadcast each end Follow.
func TestFollowStops(t *testing.T) {
	f := newFollowed(t, true, 1)
	signedOut := errors.New("signed out")
	rec := &recorder{idleFails: 2, idleErr: signedOut}
	err := ledger.Follow(t.Context(), f.store, ledger.LogFollow{Build: f.id, Live: true, Changed: f.changed.Wait, Heartbeat: 10 * time.Millisecond}, rec)
	if want := []string{"read 1..1 +steps", "idle", "read -", "idle"}; !errors.Is(err, signedOut) || !slices.Equal(rec.got, want) {
		t.Errorf("Follow with a failing Idle = %v, heard %q; want %v, %q", err, rec.got, signedOut, want)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err = ledger.Follow(ctx, f.store, ledger.LogFollow{Build: f.id, Live: true, Changed: f.changed.Wait, Heartbeat: time.Hour}, &recorder{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Follow until ctx ends = %v, want %v", err, context.DeadlineExceeded)
	}

	err = ledger.Follow(t.Context(), f.store, ledger.LogFollow{Build: f.id, Live: true}, &recorder{})
	if err == nil || !strings.Contains(err.Error(), "no change broadcast") {
		t.Errorf("Follow live without Changed = %v, want an error", err)
	}

	err = ledger.Follow(t.Context(), f.store, ledger.LogFollow{Build: f.id + 1}, &recorder{})
	if ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Follow of an unknown build = %v, want ENOTFOUND", err)
	}
}

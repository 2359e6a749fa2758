package ledgertest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// utcLock is l as the ledger gives it back: its time in UTC.
func utcLock(l ferry.Lock) ferry.Lock {
	l.CreatedAt = l.CreatedAt.UTC()
	return l
}

func testLocks(t *testing.T, open OpenFunc) {
	stores := []ledger.Store{mustOpen(t, open), mustOpen(t, open)}
	s := stores[0]
	ctx := t.Context()

	_, err := s.LockOf(ctx, "app", "prod")
	wantError(t, "LockOf(unlocked)", err, ferry.ENOTFOUND, "environment prod is not locked")
	_, err = s.Unlock(ctx, "app", "prod")
	wantError(t, "Unlock(unlocked)", err, ferry.ENOTFOUND, "environment prod is not locked")

	for _, tt := range []struct {
		name string
		l    ferry.Lock
		msg  string
	}{
		{"no app", ferry.Lock{Env: "prod", Reason: "audit", Actor: "ada", CreatedAt: t0}, "a lock needs an app and an environment"},
		{"no env", ferry.Lock{App: "app", Reason: "audit", Actor: "ada", CreatedAt: t0}, "a lock needs an app and an environment"},
		{"no reason", ferry.Lock{App: "app", Env: "prod", Actor: "ada", CreatedAt: t0}, "a lock needs a reason"},
		{"blank reason", ferry.Lock{App: "app", Env: "prod", Reason: " \t", Actor: "ada", CreatedAt: t0}, "a lock needs a reason"},
		{"no actor", ferry.Lock{App: "app", Env: "prod", Reason: "audit", CreatedAt: t0}, "a lock needs an actor"},
		{"no time", ferry.Lock{App: "app", Env: "prod", Reason: "audit", Actor: "ada"}, "a lock needs its time"},
	} {
		wantError(t, "Lock("+tt.name+")", s.Lock(ctx, &tt.l), ferry.EINVALID, tt.msg)
	}
	if ls, err := s.Locks(ctx, "app"); err != nil || len(ls) != 0 {
		t.Fatalf("Locks after invalid locks = %v, %v; want none stored", ls, err)
	}

	// Lockers race on one environment through two stores: exactly one wins,
	// every other learns who holds the lock, since when and why. Later rounds
	// lock earlier, so Locks ordered by time would not be ordered by env.
	for round := range 3 {
		env := fmt.Sprintf("race%d", round)
		const racers = 8
		locks := make([]*ferry.Lock, racers)
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			locks[i] = &ferry.Lock{App: "app", Env: env, Reason: fmt.Sprintf("audit %d", i),
				Actor: fmt.Sprintf("racer%d", i), CreatedAt: at(time.Duration(10-round)*time.Minute + time.Duration(i)*time.Second)}
			wg.Go(func() {
				<-start
				errs[i] = stores[i%2].Lock(ctx, locks[i])
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch ferry.ErrorCode(err) {
			case "":
				if winner >= 0 {
					t.Errorf("round %d: racers %d and %d both locked %s", round, winner, i, env)
				}
				winner = i
			case ferry.ECONFLICT:
			default:
				t.Errorf("round %d: racer %d: Lock = %v, want nil or conflict", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no racer locked %s", round, env)
		}
		w := locks[winner]
		want := fmt.Sprintf("%s is already locked by %s since %s UTC: %s", env, w.Actor, w.CreatedAt.UTC().Format(time.DateTime), w.Reason)
		for i, err := range errs {
			if i != winner {
				wantError(t, fmt.Sprintf("round %d: losing Lock %d", round, i), err, ferry.ECONFLICT, want)
			}
		}
		got, err := stores[1].LockOf(ctx, "app", env)
		if err != nil || *got != utcLock(*w) {
			t.Errorf("round %d: LockOf = %+v, %v; want the winner's %+v", round, got, err, utcLock(*w))
		}
	}

	prod := &ferry.Lock{App: "app", Env: "prod", Reason: "  quarterly\x00audit\xff ", Actor: " ada ", CreatedAt: t0}
	if err := s.Lock(ctx, prod); err != nil {
		t.Fatalf("Lock(prod) = %v", err)
	}
	want := ferry.Lock{App: "app", Env: "prod", Reason: "quarterly\uFFFDaudit\uFFFD", Actor: "ada", CreatedAt: t0.UTC()}
	if *prod != want {
		t.Errorf("Lock(prod) left %+v, want %+v (trimmed, NUL and invalid UTF-8 replaced, in UTC)", *prod, want)
	}
	got, err := stores[1].LockOf(ctx, "app", "prod")
	if err != nil || *got != want || got.CreatedAt.Location() != time.UTC {
		t.Errorf("LockOf(prod) = %+v, %v; want %+v in UTC", got, err, want)
	}
	wantError(t, "Lock(prod again)", s.Lock(ctx, &ferry.Lock{App: "app", Env: "prod", Reason: "mine", Actor: "bob", CreatedAt: at(time.Hour)}),
		ferry.ECONFLICT, "prod is already locked by ada since 2025-03-14 14:09:26 UTC: quarterly\uFFFDaudit\uFFFD")
	other := &ferry.Lock{App: "other", Env: "prod", Reason: "freeze", Actor: "bob", CreatedAt: at(time.Minute)}
	if err := s.Lock(ctx, other); err != nil {
		t.Errorf("Lock(other app's prod) = %v, want nil: locks are per app", err)
	}

	ls, err := s.Locks(ctx, "app")
	if err != nil {
		t.Fatalf("Locks = %v", err)
	}
	var envs []string
	for _, l := range ls {
		envs = append(envs, l.Env)
	}
	if strings.Join(envs, ",") != "prod,race0,race1,race2" {
		t.Errorf("Locks(app) envs = %v, want [prod race0 race1 race2] (by env)", envs)
	}
	if ls, err := s.Locks(ctx, "none"); err != nil || ls == nil || len(ls) != 0 {
		t.Errorf("Locks(none) = %#v, %v; want an empty, non-nil list", ls, err)
	}

	removed, err := stores[1].Unlock(ctx, "app", "prod")
	if err != nil || *removed != want {
		t.Errorf("Unlock(prod) = %+v, %v; want the lock removed, %+v", removed, err, want)
	}
	_, err = s.Unlock(ctx, "app", "prod")
	wantError(t, "second Unlock(prod)", err, ferry.ENOTFOUND, "environment prod is not locked")
	_, err = s.LockOf(ctx, "app", "prod")
	wantError(t, "LockOf(prod) after Unlock", err, ferry.ENOTFOUND, "environment prod is not locked")
	if got, err := s.LockOf(ctx, "other", "prod"); err != nil || *got != utcLock(*other) {
		t.Errorf("LockOf(other app's prod) after unlocking app's = %+v, %v; want it kept", got, err)
	}
	again := &ferry.Lock{App: "app", Env: "prod", Reason: "incident", Actor: "bob", CreatedAt: at(2 * time.Hour)}
	if err := s.Lock(ctx, again); err != nil {
		t.Errorf("Lock(prod) after Unlock = %v, want nil", err)
	}
	if got, err := s.LockOf(ctx, "app", "prod"); err != nil || *got != utcLock(*again) {
		t.Errorf("LockOf(prod) relocked = %+v, %v; want %+v", got, err, utcLock(*again))
	}
}

func testQuarantines(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	c := commit(1)

	_, err := s.Quarantined(ctx, "app", c)
	wantError(t, "Quarantined(clean)", err, ferry.ENOTFOUND, c[:12]+" is not quarantined")
	for _, tt := range []struct {
		name string
		q    ferry.Quarantine
		msg  string
	}{
		{"no app", ferry.Quarantine{Commit: c, Reason: "r", Actor: "ada", CreatedAt: t0}, "a quarantine needs an app"},
		{"short commit", ferry.Quarantine{App: "app", Commit: c[:12], Reason: "r", Actor: "ada", CreatedAt: t0}, `quarantine: "` + c[:12] + `" is not a full 40-hex commit id`},
		{"upper-case commit", ferry.Quarantine{App: "app", Commit: strings.ToUpper(c), Reason: "r", Actor: "ada", CreatedAt: t0}, `quarantine: "` + strings.ToUpper(c) + `" is not a full 40-hex commit id`},
		{"no reason", ferry.Quarantine{App: "app", Commit: c, Actor: "ada", CreatedAt: t0}, "a quarantine needs a reason"},
		{"blank reason", ferry.Quarantine{App: "app", Commit: c, Reason: "  ", Actor: "ada", CreatedAt: t0}, "a quarantine needs a reason"},
		{"no actor", ferry.Quarantine{App: "app", Commit: c, Reason: "r", CreatedAt: t0}, "a quarantine needs an actor"},
		{"no time", ferry.Quarantine{App: "app", Commit: c, Reason: "r", Actor: "ada"}, "a quarantine needs its time"},
	} {
		wantError(t, "AddQuarantine("+tt.name+")", s.AddQuarantine(ctx, &tt.q), ferry.EINVALID, tt.msg)
	}
	if qs, err := s.Quarantines(ctx, "app"); err != nil || len(qs) != 0 {
		t.Fatalf("Quarantines after invalid ones = %v, %v; want none stored", qs, err)
	}

	q1 := &ferry.Quarantine{App: "app", Commit: c, Release: "RC20250314_1409", Reason: " corrupts\x00carts ", Actor: "ada", CreatedAt: t0}
	if err := s.AddQuarantine(ctx, q1); err != nil || q1.ID == 0 {
		t.Fatalf("AddQuarantine = %v (ID %d), want nil and an ID", err, q1.ID)
	}
	want1 := ferry.Quarantine{ID: q1.ID, App: "app", Commit: c, Release: "RC20250314_1409", Reason: "corrupts\uFFFDcarts", Actor: "ada", CreatedAt: t0.UTC()}
	got, err := s.Quarantined(ctx, "app", c)
	if err != nil || *got != want1 || got.CreatedAt.Location() != time.UTC {
		t.Errorf("Quarantined = %+v, %v; want %+v in UTC", got, err, want1)
	}
	dup := &ferry.Quarantine{App: "app", Commit: c, Reason: "again", Actor: "bob", CreatedAt: at(time.Hour)}
	wantError(t, "AddQuarantine(same commit)", s.AddQuarantine(ctx, dup), ferry.ECONFLICT, c[:12]+" is already quarantined")
	if got, err := s.Quarantined(ctx, "app", c); err != nil || *got != want1 {
		t.Errorf("Quarantined after a duplicate = %+v, %v; want the first kept, %+v", got, err, want1)
	}
	_, err = s.Quarantined(ctx, "other", c)
	wantError(t, "Quarantined(other app)", err, ferry.ENOTFOUND, c[:12]+" is not quarantined")

	// A commit with no release, and the same commit in another app.
	q2 := &ferry.Quarantine{App: "app", Commit: commit(2), Reason: "leaks memory", Actor: "bob", CreatedAt: at(time.Minute)}
	q3 := &ferry.Quarantine{App: "other", Commit: c, Reason: "same bug", Actor: "cy", CreatedAt: at(2 * time.Minute)}
	for _, q := range []*ferry.Quarantine{q2, q3} {
		if err := s.AddQuarantine(ctx, q); err != nil {
			t.Fatalf("AddQuarantine(%s, %s) = %v", q.App, q.Commit, err)
		}
	}
	if got, err := s.Quarantined(ctx, "app", commit(2)); err != nil || *got != *q2 || got.Release != "" {
		t.Errorf("Quarantined(no release) = %+v, %v; want %+v", got, err, *q2)
	}
	qs, err := s.Quarantines(ctx, "app")
	if err != nil || len(qs) != 2 || *qs[0] != *q2 || *qs[1] != want1 {
		t.Errorf("Quarantines(app) = %v, %v; want [%+v %+v] (newest first)", qs, err, *q2, want1)
	}
	if qs, err := s.Quarantines(ctx, "other"); err != nil || len(qs) != 1 || *qs[0] != *q3 {
		t.Errorf("Quarantines(other) = %v, %v; want [%+v]", qs, err, *q3)
	}
	if qs, err := s.Quarantines(ctx, "none"); err != nil || qs == nil || len(qs) != 0 {
		t.Errorf("Quarantines(none) = %#v, %v; want an empty, non-nil list", qs, err)
	}
}

// wantError checks err's code and message.
func wantError(t *testing.T, what string, err error, code, msg string) {
	t.Helper()
	if ferry.ErrorCode(err) != code || ferry.ErrorMessage(err) != msg {
		t.Errorf("%s = %v, want %s %q", what, err, code, msg)
	}
}

package ledgertest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

func testLocks(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	if _, err := s.LockOf(ctx, "app", "prod"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("LockOf(unlocked) = %v, want ENOTFOUND", err)
	}
	for _, bad := range []*ferry.Lock{
		{App: "app", Env: "prod", Actor: "ada", CreatedAt: t0},
		{App: "app", Env: "prod", Reason: "audit", CreatedAt: t0},
		{App: "app", Env: "prod", Reason: "audit", Actor: "ada"},
	} {
		if err := s.Lock(ctx, bad); ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("Lock(%+v) = %v, want EINVALID", bad, err)
		}
	}
	// Two lockers race: exactly one wins, the other learns who holds it.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, who := range []string{"ada", "bob"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Lock(ctx, &ferry.Lock{App: "app", Env: "prod", Reason: "audit by " + who, Actor: who, CreatedAt: t0})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch ferry.ErrorCode(err) {
		case "":
			won++
		case ferry.ECONFLICT:
			if !strings.Contains(ferry.ErrorMessage(err), "already locked by") {
				t.Errorf("losing Lock = %q, want it to name the holder", ferry.ErrorMessage(err))
			}
		default:
			t.Errorf("Lock race: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("Lock race: %d winners, want 1", won)
	}
	l, err := s.LockOf(ctx, "app", "prod")
	if err != nil || !l.CreatedAt.Equal(t0) || l.CreatedAt.Location() != time.UTC || l.Env != "prod" {
		t.Errorf("LockOf = %+v, %v; want the lock at %v in UTC", l, err, t0)
	}
	if ls, err := s.Locks(ctx, "app"); err != nil || len(ls) != 1 {
		t.Errorf("Locks = %v, %v; want one", ls, err)
	}
	if ls, err := s.Locks(ctx, "other"); err != nil || ls == nil || len(ls) != 0 {
		t.Errorf("Locks(other app) = %#v, %v; want an empty list", ls, err)
	}
	got, err := s.Unlock(ctx, "app", "prod")
	if err != nil || got.Actor != l.Actor {
		t.Errorf("Unlock = %+v, %v; want the lock of %s", got, err, l.Actor)
	}
	if _, err := s.Unlock(ctx, "app", "prod"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("second Unlock = %v, want ENOTFOUND", err)
	}
	if _, err := s.LockOf(ctx, "app", "prod"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("LockOf after Unlock = %v, want ENOTFOUND", err)
	}
}

func testQuarantines(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	commit := strings.Repeat("ab", 20)
	if _, err := s.Quarantined(ctx, "app", commit); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("Quarantined(clean) = %v, want ENOTFOUND", err)
	}
	for _, bad := range []*ferry.Quarantine{
		{App: "app", Commit: "abc", Reason: "r", Actor: "ada", CreatedAt: t0},
		{App: "app", Commit: commit, Actor: "ada", CreatedAt: t0},
		{App: "app", Commit: commit, Reason: "r", CreatedAt: t0},
	} {
		if err := s.AddQuarantine(ctx, bad); ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("AddQuarantine(%+v) = %v, want EINVALID", bad, err)
		}
	}
	q := &ferry.Quarantine{App: "app", Commit: commit, Release: "RC20261126_2350", Reason: "corrupts carts", Actor: "ada", CreatedAt: t0}
	if err := s.AddQuarantine(ctx, q); err != nil || q.ID == 0 {
		t.Fatalf("AddQuarantine = %v (id %d)", err, q.ID)
	}
	if err := s.AddQuarantine(ctx, &ferry.Quarantine{App: "app", Commit: commit, Reason: "again", Actor: "bob", CreatedAt: t0}); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("second AddQuarantine = %v, want ECONFLICT", err)
	}
	got, err := s.Quarantined(ctx, "app", commit)
	if err != nil || got.Release != q.Release || got.Reason != q.Reason || !got.CreatedAt.Equal(t0) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("Quarantined = %+v, %v; want %+v", got, err, q)
	}
	if _, err := s.Quarantined(ctx, "other", commit); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Quarantined(other app) = %v, want ENOTFOUND", err)
	}
	qs, err := s.Quarantines(ctx, "app")
	if err != nil || len(qs) != 1 || qs[0].ID != q.ID {
		t.Errorf("Quarantines = %v, %v; want the one", qs, err)
	}
	if qs, err := s.Quarantines(ctx, "other"); err != nil || qs == nil || len(qs) != 0 {
		t.Errorf("Quarantines(other app) = %#v, %v; want an empty list", qs, err)
	}
}

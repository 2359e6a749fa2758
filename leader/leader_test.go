package leader_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/leader"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

func openLedger(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestAcquire(t *testing.T) {
	s := openLedger(t)
	ctx := t.Context()
	first, err := leader.Acquire(ctx, s, leader.Config{App: "app", Holder: "a", Address: "127.0.0.1:1"})
	if err != nil || first.Term() != 1 {
		t.Fatalf("Acquire(free lease) = %v, %v; want term 1", first, err)
	}
	for _, tt := range []struct {
		name     string
		holder   string
		dead     func(*ledger.Lease) bool
		wantTerm int64
		wantErr  string
	}{
		{"another server leads", "b", nil, 0, "app is led by a at 127.0.0.1:1 (term 1"},
		{"its holder is alive", "b", func(*ledger.Lease) bool { return false }, 0, "app is led by a"},
		{"its holder is a dead previous run", "b", func(l *ledger.Lease) bool { return l.Holder == "a" }, 2, ""},
		{"the new holder is not dead", "c", func(l *ledger.Lease) bool { return l.Holder == "a" }, 0, "app is led by b (term 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := leader.Acquire(ctx, s, leader.Config{App: "app", Holder: tt.holder, Dead: tt.dead})
			if tt.wantErr != "" {
				if ferry.ErrorCode(err) != ferry.ECONFLICT || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Acquire = %v, want ECONFLICT %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || l.Term() != tt.wantTerm {
				t.Fatalf("Acquire = %v, %v; want term %d", l, err, tt.wantTerm)
			}
		})
	}
}

// TestHold: a held lease is renewed past its TTL and resigned at the end,
// so that the next server leads at once.
func TestHold(t *testing.T) {
	s := openLedger(t)
	ctx, cancel := context.WithCancel(t.Context())
	const ttl = 300 * time.Millisecond
	l, err := leader.Acquire(ctx, s, leader.Config{App: "app", Holder: "a", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Hold(ctx) }()
	time.Sleep(3 * ttl)
	if _, err := leader.Acquire(t.Context(), s, leader.Config{App: "app", Holder: "b", TTL: ttl}); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Fatalf("Acquire after 3 TTLs of a held lease = %v, want refused", err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("a held lease lost: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Hold = %v", err)
	}
	b, err := leader.Acquire(t.Context(), s, leader.Config{App: "app", Holder: "b", TTL: ttl})
	if err != nil || b.Term() != 2 {
		t.Fatalf("Acquire after a resignation = %v, %v; want term 2 at once", b, err)
	}
}

// stalled is a store whose renewals hang until their context ends, as
// behind a network partition.
type stalled struct{ leader.Store }

func (stalled) Renew(ctx context.Context, _, _ string, _ int64, _ time.Duration, _ time.Time) (*ledger.Lease, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestLose: the lead ends on its own when the lease is taken or cannot be
// renewed in time, never later than the TTL.
func TestLose(t *testing.T) {
	const ttl = 300 * time.Millisecond
	for _, tt := range []struct {
		name    string
		store   func(*sqlite.Store) leader.Store
		depose  bool
		wantErr string
	}{
		{"another server took the lease", func(s *sqlite.Store) leader.Store { return s }, true, "a lost the lead of app in term 1: intruder holds it in term 2"},
		{"renewals stall", func(s *sqlite.Store) leader.Store { return stalled{s} }, false, "the lease of term 1 ran out"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openLedger(t)
			l, err := leader.Acquire(t.Context(), tt.store(s), leader.Config{App: "app", Holder: "a", TTL: ttl})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			go l.Hold(t.Context())
			if tt.depose {
				if _, err := s.TakeOver(t.Context(), "app", "intruder", "", l.Lease(), ttl, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-l.Lost():
			case <-time.After(3 * ttl):
				t.Fatal("the lead was not lost")
			}
			if took := time.Since(start); took > ttl+ttl/2 {
				t.Errorf("lost after %s, want within the TTL %s", took, ttl)
			}
			if err := l.Err(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Err() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

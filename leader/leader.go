// Package leader makes one ferry server the leader of an app's ledger and
// keeps it so: it takes the ledger's lease (ledger.LeaseStore), renews it
// well within its TTL, and gives up on its own once it could not renew in
// time. The lease's term is the fencing token: the server writes through
// the ledger's fenced store of that term, so a leader deposed while it was
// paused or cut off writes nothing after its successor took over.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// Store is what leadership needs of the ledger.
type Store interface {
	Campaign(ctx context.Context, app, holder, address string, ttl time.Duration, now time.Time) (*ledger.Lease, error)
	TakeOver(ctx context.Context, app, holder, address string, prev *ledger.Lease, ttl time.Duration, now time.Time) (*ledger.Lease, error)
	Renew(ctx context.Context, app, holder string, term int64, ttl time.Duration, now time.Time) (*ledger.Lease, error)
	Resign(ctx context.Context, app, holder string, term int64, now time.Time) error
}

// DefaultTTL is how long a lease lasts without renewal: a crashed leader
// on another machine is replaced after at most this long (and the
// standby's next campaign).
const DefaultTTL = 10 * time.Second

// Config says who campaigns for what.
type Config struct {
	App    string
	Holder string // unique per run of a process
	// Address is where this server's API listens, for others to name.
	Address string
	TTL     time.Duration // DefaultTTL when zero
	// Dead reports whether the holder of a live lease is known dead (a
	// previous run of this server: its data directory lock is free), so
	// that its lease is taken over at once instead of after the TTL.
	Dead   func(*ledger.Lease) bool
	Now    func() time.Time // time.Now when nil
	Logger *slog.Logger
}

// Lead is this server's leadership in one term.
type Lead struct {
	cfg   Config
	store Store
	lease *ledger.Lease
	// held is the local monotonic deadline of the lease: the last
	// successful renewal's start plus the TTL.
	held time.Time
	lost chan struct{}
	why  error
}

// Acquire takes the lease of cfg.App for cfg.Holder: a free or expired
// lease, or a live one whose holder cfg.Dead declares dead. While another
// server leads it returns that server's lease with the ECONFLICT error
// naming it.
func Acquire(ctx context.Context, s Store, cfg Config) (*Lead, error) {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	l, err := s.Campaign(ctx, cfg.App, cfg.Holder, cfg.Address, cfg.TTL, cfg.Now())
	if ferry.ErrorCode(err) == ferry.ECONFLICT && l != nil && cfg.Dead != nil && cfg.Dead(l) {
		cfg.Logger.Info("taking over the lease of a previous run", "holder", l.Holder, "term", l.Term)
		l, err = s.TakeOver(ctx, cfg.App, cfg.Holder, cfg.Address, l, cfg.TTL, cfg.Now())
	}
	if err != nil {
		return nil, err
	}
	return &Lead{cfg: cfg, store: s, lease: l, held: start.Add(cfg.TTL), lost: make(chan struct{})}, nil
}

// Via makes the lead renew and resign through s from now on: the store
// fenced by its term, which the server writes through, so that renewals
// queue with its other writes instead of contending with them. Call it
// before Hold.
func (l *Lead) Via(s Store) { l.store = s }

// Term is the lease's term: the fencing token of this leadership.
func (l *Lead) Term() int64 { return l.lease.Term }

// Lease is the lease as last taken or renewed.
func (l *Lead) Lease() *ledger.Lease { return l.lease }

// Lost is closed once this server no longer leads: the lease moved on, or
// could not be renewed before it ran out. Err says why.
func (l *Lead) Lost() <-chan struct{} { return l.lost }

// Err is why the lead was lost; nil while it holds.
func (l *Lead) Err() error {
	select {
	case <-l.lost:
		return l.why
	default:
		return nil
	}
}

// Hold renews the lease every third of its TTL until ctx ends, then
// resigns it so that a standby need not wait. It returns early, with
// Lost closed, once a renewal finds the lease taken or no renewal has
// succeeded within the TTL (by this process's monotonic clock, so a
// paused process counts the pause).
func (l *Lead) Hold(ctx context.Context) error {
	every := l.cfg.TTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := l.store.Resign(rctx, l.cfg.App, l.cfg.Holder, l.lease.Term, l.cfg.Now()); err != nil {
				l.cfg.Logger.Warn("resign the lease", "term", l.lease.Term, "err", err)
			}
			return nil
		case <-t.C:
		}
		if err := l.renew(ctx); err != nil {
			l.why = err
			close(l.lost)
			return err
		}
	}
}

// renew renews once; an error means the lead is over.
func (l *Lead) renew(ctx context.Context) error {
	start := time.Now()
	if start.After(l.held) {
		return fmt.Errorf("the lease of term %d ran out %s ago before it could be renewed", l.lease.Term, start.Sub(l.held).Round(time.Millisecond))
	}
	rctx, cancel := context.WithDeadline(ctx, l.held)
	defer cancel()
	lease, err := l.store.Renew(rctx, l.cfg.App, l.cfg.Holder, l.lease.Term, l.cfg.TTL, l.cfg.Now())
	switch {
	case err == nil:
		l.lease, l.held = lease, start.Add(l.cfg.TTL)
		return nil
	case ferry.ErrorCode(err) == ferry.ECONFLICT:
		return err
	case errors.Is(err, context.DeadlineExceeded) || time.Now().After(l.held):
		return fmt.Errorf("the lease of term %d ran out before it could be renewed: %w", l.lease.Term, err)
	}
	l.cfg.Logger.Warn("renew the lease; trying again", "term", l.lease.Term, "held_for", time.Until(l.held).Round(time.Millisecond), "err", err)
	return nil
}

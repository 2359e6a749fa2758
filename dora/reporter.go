package dora

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// Window bounds: the default, and what a report may ask for. The upper
// bound keeps a report's ledger scan bounded.
const (
	DefaultWindow = 30 * 24 * time.Hour
	MinWindow     = time.Hour
	MaxWindow     = 366 * 24 * time.Hour
)

// maxHistory bounds the deployments one report reads from the ledger.
const maxHistory = 50 * ledger.MaxLimit

// ParseWindow reads a window such as 30d, 2w, 36h or 90m; "" is
// DefaultWindow. Anything else, or a window outside [MinWindow,
// MaxWindow], is an EINVALID error saying what is wanted.
func ParseWindow(s string) (time.Duration, error) {
	if s == "" {
		return DefaultWindow, nil
	}
	bad := ferry.Errorf(ferry.EINVALID, "window %q is not a duration like 30d, 2w, 36h or 90m", s)
	outOfRange := ferry.Errorf(ferry.EINVALID, "window %s is out of range: it must be from %s to %s", s, FormatWindow(MinWindow), FormatWindow(MaxWindow))
	var d time.Duration
	if n, unit, ok := cutUnit(s); ok {
		v, err := strconv.ParseUint(n, 10, 32)
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange), v == 0 && err == nil:
			return 0, bad
		case err != nil, v > uint64(MaxWindow/unit):
			return 0, outOfRange
		}
		d = time.Duration(v) * unit
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad
		}
	}
	if d < MinWindow || d > MaxWindow {
		return 0, outOfRange
	}
	return d, nil
}

func cutUnit(s string) (string, time.Duration, bool) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		return n, 24 * time.Hour, true
	}
	if n, ok := strings.CutSuffix(s, "w"); ok {
		return n, 7 * 24 * time.Hour, true
	}
	return "", 0, false
}

// FormatWindow writes a window as ParseWindow reads it: whole days as
// "30d", anything else as a Go duration.
func FormatWindow(d time.Duration) string {
	if day := 24 * time.Hour; d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// Deployments is what a Reporter reads of the ledger.
type Deployments interface {
	Deployments(ctx context.Context, f ledger.DeploymentFilter) ([]*ferry.Deployment, error)
}

// Reporter computes Reports from the ledger and git.
type Reporter struct {
	App string
	// Envs are the configured environments, in configuration order.
	Envs   []ferry.Environment
	Ledger Deployments
	// Commits gives the commit times for one report's context, e.g.
	// (*GitCommits).WithContext.
	Commits func(ctx context.Context) CommitTimes
	// Now is the clock; the window ends at Now().
	Now func() time.Time
}

// Reports returns the figures of env, or of every production environment
// (Production) when env is "", over the window ending now. An unknown
// environment is ENOTFOUND, a window out of range EINVALID.
//
// Cost: per environment, one ledger query of up to ledger.MaxLimit
// deployments for each thousand deployments since the last one that
// succeeded before the window (at most maxHistory), and one git log per
// change in the window that GitCommits has not seen yet.
func (r *Reporter) Reports(ctx context.Context, env string, window time.Duration) ([]Report, error) {
	if window < MinWindow || window > MaxWindow {
		return nil, ferry.Errorf(ferry.EINVALID, "window %s is out of range: it must be from %s to %s", window, FormatWindow(MinWindow), FormatWindow(MaxWindow))
	}
	names := ferry.Production(r.Envs)
	if env != "" {
		if !r.known(env) {
			return nil, ferry.Errorf(ferry.ENOTFOUND, "no environment %q (have %s)", env, strings.Join(r.names(), ", "))
		}
		names = []string{env}
	}
	to := r.Now().UTC()
	from := to.Add(-window)
	out := make([]Report, 0, len(names))
	for _, name := range names {
		hist, err := r.history(ctx, name, from)
		if err != nil {
			return nil, err
		}
		rep, err := Compute(hist, r.Commits(ctx), name, from, to)
		if err != nil {
			return nil, fmt.Errorf("dora %s: %w", name, err)
		}
		out = append(out, rep)
	}
	return out, nil
}

// history reads env's deployments, newest first, back to the newest one
// that succeeded before from.
func (r *Reporter) history(ctx context.Context, env string, from time.Time) ([]*ferry.Deployment, error) {
	var out []*ferry.Deployment
	f := ledger.DeploymentFilter{App: r.App, Env: env, Limit: ledger.MaxLimit}
	for {
		ds, err := r.Ledger.Deployments(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("deployments of %s: %w", env, err)
		}
		out = append(out, ds...)
		for _, d := range ds {
			if d.State == ferry.DeploymentSucceeded && !d.FinishedAt.IsZero() && d.FinishedAt.Before(from) {
				return out, nil
			}
		}
		if len(ds) < f.PageSize() {
			return out, nil
		}
		if len(out) >= maxHistory {
			return nil, ferry.Errorf(ferry.EINVALID, "%s has more than %d deployments in the window: ask for a shorter window", env, maxHistory)
		}
		f.BeforeID = ds[len(ds)-1].ID
	}
}

func (r *Reporter) known(env string) bool {
	for _, e := range r.Envs {
		if e.Name == env {
			return true
		}
	}
	return false
}

func (r *Reporter) names() []string {
	var out []string
	for _, e := range r.Envs {
		out = append(out, e.Name)
	}
	return out
}

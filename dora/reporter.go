package dora

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// CommitStore keeps the commit times of each succeeded change (the
// ledger: SetCommitTimes, CommitTimes), so that a change's lead time reads
// git once, also across restarts and ferry servers.
type CommitStore interface {
	CommitTimes(ctx context.Context, ids []int64) (map[int64][]time.Time, error)
	SetCommitTimes(ctx context.Context, id int64, times []time.Time) error
}

// Reporter computes Reports from the ledger and git. It is safe for
// concurrent use; one report is computed at a time.
//
// A Reporter keeps, per environment asked about, a copy of the
// deployments of the longest window asked for (back to the newest one
// that succeeded before it), synced with the ledger at each report: the
// first report of an environment reads its window from the ledger, later
// ones only the deployments newer than the last one up to which every
// deployment had ended (normally one query of a few rows). It keeps the
// commit times of each succeeded change once read — in Stored, when set,
// and in memory — so git is read once per change, when its lead time is
// first needed and every deployment before it has ended. Each report is
// then computed in memory from that copy (Compute's rules, unchanged), and
// kept until the ledger changes or the window moves past a deployment's
// finish: until then a report of the same window is the same figures.
type Reporter struct {
	App string
	// Envs are the configured environments, in configuration order.
	Envs   []ferry.Environment
	Ledger Deployments
	// Stored keeps the changes' commit times (the ledger); nil keeps them
	// in memory only, read again from git after a restart.
	Stored CommitStore
	// Commits gives the commit times for one report's context, e.g.
	// (*GitCommits).WithContext.
	Commits func(ctx context.Context) CommitTimes
	// Now is the clock; the window ends at Now().
	Now func() time.Time

	mu   sync.Mutex
	kept map[string]*envHistory
}

// envHistory is what a Reporter keeps of one environment.
type envHistory struct {
	window time.Duration // the longest window asked for
	// deps are the environment's deployments, by ID, from the newest one
	// that succeeded before the window (the base: what the window's first
	// change is diffed against) on; all of them when complete.
	deps     []*ferry.Deployment
	complete bool
	// mark: every deployment with an ID up to mark has ended and is in deps
	// as it ended; those above are read again at each report.
	mark int64
	// times are the commit times of succeeded changes, kept for good;
	// asked are the IDs already looked up in Stored.
	times map[int64][]time.Time
	asked map[int64]bool
	// changes counts the syncs that read something from the ledger;
	// reports are the last report of each window, valid while changes is
	// the same and the window has not moved past a deployment's finish.
	changes int64
	reports map[time.Duration]keptReport
}

// keptReport is a report computed at one moment that holds, but for its
// From and To, until the window moves past until, or something changes.
type keptReport struct {
	rep     Report
	changes int64
	until   time.Time
}

// Reports returns the figures of env, or of every production environment
// (Production) when env is "", over the window ending now. An unknown
// environment is ENOTFOUND, a window out of range EINVALID.
//
// Cost, per environment: the first report (or the first with a longer
// window) reads the window from the ledger, one query of up to
// ledger.MaxLimit deployments for each thousand deployments since the last
// one that succeeded before the window (at most maxHistory); every report
// reads the deployments created or unfinished since the last one (a query
// of up to 50 rows, more only when more changed); when that found
// something, or the window has moved past a deployment's finish, it looks
// up once in Stored the commit times of the changes it has not seen, runs
// one git log for each change whose times are stored nowhere yet, and
// computes the report in memory; else it answers the report it kept.
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
	r.mu.Lock()
	defer r.mu.Unlock()
	to := r.Now().UTC()
	from := to.Add(-window)
	out := make([]Report, 0, len(names))
	for _, name := range names {
		h, err := r.sync(ctx, name, window, to)
		if err != nil {
			return nil, err
		}
		if k, ok := h.reports[window]; ok && k.changes == h.changes && !to.After(k.until) {
			rep := k.rep
			rep.From, rep.To = from, to
			out = append(out, rep)
			continue
		}
		if err := r.lookUp(ctx, h); err != nil {
			return nil, fmt.Errorf("dora %s: %w", name, err)
		}
		rep, err := compute(h.deps, r.arrived(ctx, h, to), name, from, to)
		if err != nil {
			return nil, fmt.Errorf("dora %s: %w", name, err)
		}
		h.reports[window] = keptReport{rep: rep, changes: h.changes, until: h.stable(window, to)}
		out = append(out, rep)
	}
	return out, nil
}

// sync returns env's kept history, brought up to date with the ledger and
// reaching back to the base of window: read whole the first time (or for
// a longer window than before), else only what changed since.
func (r *Reporter) sync(ctx context.Context, env string, window time.Duration, to time.Time) (*envHistory, error) {
	if r.kept == nil {
		r.kept = map[string]*envHistory{}
	}
	h := r.kept[env]
	if h == nil || window > h.window {
		deps, complete, err := r.history(ctx, env, to.Add(-window))
		if err != nil {
			return nil, err
		}
		fresh := &envHistory{window: window, complete: complete, times: map[int64][]time.Time{}, asked: map[int64]bool{},
			reports: map[time.Duration]keptReport{}}
		if h != nil { // what was read of git holds for good
			fresh.times, fresh.asked = h.times, h.asked
		}
		h = fresh
		h.replaceAbove(0, deps)
		r.kept[env] = h
	} else {
		deps, err := r.newer(ctx, env, h.mark)
		if err != nil {
			return nil, err
		}
		if len(deps) > 0 {
			h.changes++
		}
		h.replaceAbove(h.mark, deps)
	}
	h.trim(to.Add(-h.window))
	return h, nil
}

// history reads env's deployments, newest first, back to the newest one
// that succeeded before from; complete says it read them all.
func (r *Reporter) history(ctx context.Context, env string, from time.Time) (out []*ferry.Deployment, complete bool, err error) {
	f := ledger.DeploymentFilter{App: r.App, Env: env, Limit: ledger.MaxLimit}
	for {
		ds, err := r.Ledger.Deployments(ctx, f)
		if err != nil {
			return nil, false, fmt.Errorf("deployments of %s: %w", env, err)
		}
		out = append(out, ds...)
		for _, d := range ds {
			if isBase(d, from) {
				return out, false, nil
			}
		}
		if len(ds) < f.PageSize() {
			return out, true, nil
		}
		if len(out) >= maxHistory {
			return nil, false, ferry.Errorf(ferry.EINVALID, "%s has more than %d deployments in the window: ask for a shorter window", env, maxHistory)
		}
		f.BeforeID = ds[len(ds)-1].ID
	}
}

// newer reads env's deployments with an ID above mark, newest first: a
// first page of 50 (a report finds a few at most), then full pages.
func (r *Reporter) newer(ctx context.Context, env string, mark int64) ([]*ferry.Deployment, error) {
	var out []*ferry.Deployment
	f := ledger.DeploymentFilter{App: r.App, Env: env, Limit: 50}
	for {
		ds, err := r.Ledger.Deployments(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("deployments of %s: %w", env, err)
		}
		for _, d := range ds {
			if d.ID <= mark {
				return out, nil
			}
			out = append(out, d)
		}
		if len(ds) < f.PageSize() {
			return out, nil
		}
		f.BeforeID, f.Limit = ds[len(ds)-1].ID, ledger.MaxLimit
	}
}

// isBase reports whether d can be the base of a window starting at from:
// it succeeded before it.
func isBase(d *ferry.Deployment, from time.Time) bool {
	return d.State == ferry.DeploymentSucceeded && !d.FinishedAt.IsZero() && d.FinishedAt.Before(from)
}

// replaceAbove replaces the kept deployments with an ID above mark by
// deps (any order), keeping of each only what the figures read, and moves
// the mark up over those that have ended.
func (h *envHistory) replaceAbove(mark int64, deps []*ferry.Deployment) {
	i, _ := slices.BinarySearchFunc(h.deps, mark+1, func(d *ferry.Deployment, id int64) int { return cmp.Compare(d.ID, id) })
	h.deps = h.deps[:i]
	sorted := slices.SortedFunc(slices.Values(deps), func(a, b *ferry.Deployment) int { return cmp.Compare(a.ID, b.ID) })
	for _, d := range sorted {
		h.deps = append(h.deps, &ferry.Deployment{ID: d.ID, Env: d.Env, Kind: d.Kind, State: d.State, Commit: d.Commit,
			Digest: d.Digest, CreatedAt: d.CreatedAt, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt})
	}
	h.mark = mark
	for _, d := range h.deps[i:] {
		if !d.State.Final() {
			break
		}
		h.mark = d.ID
	}
}

// trim drops the deployments before the base of a window starting at
// from, and what was kept of them.
func (h *envHistory) trim(from time.Time) {
	base := -1
	for i, d := range h.deps {
		if isBase(d, from) {
			base = i
		}
	}
	if base <= 0 {
		return
	}
	h.deps, h.complete = h.deps[base:], false
	first := h.deps[0].ID
	for id := range h.times {
		if id < first {
			delete(h.times, id)
		}
	}
	for id := range h.asked {
		if id < first {
			delete(h.asked, id)
		}
	}
}

// stable returns until when a report of window computed at to holds as
// long as the ledger does not change: Compute reads the clock only through
// whether a deployment finished before To and before From, and those stay
// as they are until To passes the next finish, or From passes the next
// finish in the window (To passes that finish plus the window).
func (h *envHistory) stable(window time.Duration, to time.Time) time.Time {
	until := to.Add(MaxWindow) // no finish ahead: until the ledger changes
	for _, d := range h.deps {
		if d.FinishedAt.IsZero() {
			continue
		}
		for _, edge := range []time.Time{d.FinishedAt, d.FinishedAt.Add(window)} {
			if !edge.Before(to) && edge.Before(until) {
				until = edge
			}
		}
	}
	return until
}

// lookUp reads from Stored the commit times of the succeeded changes not
// looked up yet.
func (r *Reporter) lookUp(ctx context.Context, h *envHistory) error {
	if r.Stored == nil {
		return nil
	}
	var ids []int64
	for _, d := range h.deps {
		if isChange(d) && d.State == ferry.DeploymentSucceeded && !h.asked[d.ID] {
			if _, ok := h.times[d.ID]; !ok {
				ids = append(ids, d.ID)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	stored, err := r.Stored.CommitTimes(ctx, ids)
	if err != nil {
		return fmt.Errorf("read kept commit times: %w", err)
	}
	for _, id := range ids {
		h.asked[id] = true
	}
	maps.Copy(h.times, stored)
	return nil
}

// arrived gives the commit times of a change from what is kept, else from
// git, keeping the answer when it holds for good (newCommitTimes).
func (r *Reporter) arrived(ctx context.Context, h *envHistory, to time.Time) arrivals {
	var commits CommitTimes
	return func(before []*ferry.Deployment, d *ferry.Deployment) ([]time.Time, error) {
		if ts, ok := h.times[d.ID]; ok {
			return ts, nil
		}
		if commits == nil {
			commits = r.Commits(ctx)
		}
		ts, final, err := newCommitTimes(commits, before, d, to)
		if err != nil || !final {
			return ts, err
		}
		if r.Stored != nil {
			if err := r.Stored.SetCommitTimes(ctx, d.ID, ts); err != nil {
				return nil, fmt.Errorf("keep commit times: %w", err)
			}
		}
		h.times[d.ID] = ts
		return ts, nil
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

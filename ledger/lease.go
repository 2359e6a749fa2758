package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
)

// Lease is the leadership of an app's ledger: which server leads, in which
// term, until when. Terms only grow: every change of holder takes the next
// one, so a term names one leader's reign and serves as its fencing token.
type Lease struct {
	App    string `json:"app"`
	Holder string `json:"holder"` // the server: unique per run of a process
	// Address is where the holder's API listens, for standbys to name.
	Address    string    `json:"address,omitempty"`
	Term       int64     `json:"term"`
	AcquiredAt time.Time `json:"acquiredAt"`
	RenewedAt  time.Time `json:"renewedAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// Live reports whether the lease still holds at now.
func (l *Lease) Live(now time.Time) bool { return now.Before(l.ExpiresAt) }

// LeaseStore keeps the leader lease of each app. Times are the callers'
// clocks: servers sharing a ledger must agree on the time to well within
// the lease's TTL.
type LeaseStore interface {
	// Campaign makes holder the leader of app until now+ttl when the lease
	// is free, expired or already holder's, and returns it: a new holder
	// takes the next term, the same holder keeps its term (a renewal).
	// While another holder's lease is live it returns that lease with an
	// ECONFLICT error (AlreadyLed) that names it.
	Campaign(ctx context.Context, app, holder, address string, ttl time.Duration, now time.Time) (*Lease, error)
	// Renew extends holder's lease of term to now+ttl. ECONFLICT (Lost)
	// when the lease is no longer holder's in term: the holder must stop
	// leading at once. A holder renews only while its lease is live by its
	// own count; an expired lease nobody took is renewed too.
	Renew(ctx context.Context, app, holder string, term int64, ttl time.Duration, now time.Time) (*Lease, error)
	// TakeOver makes holder the leader of app in the next term when the
	// lease is still prev's (its holder in its term), live or not: for a
	// server that has proved prev's process dead (it holds that process's
	// data directory lock) and need not wait for the TTL. ECONFLICT when
	// the lease moved on.
	TakeOver(ctx context.Context, app, holder, address string, prev *Lease, ttl time.Duration, now time.Time) (*Lease, error)
	// Resign ends holder's lease of term at now, so that a standby takes
	// over without waiting for the TTL; a lease already lost is left.
	Resign(ctx context.Context, app, holder string, term int64, now time.Time) error
	// Leader returns app's lease, live or not; ENOTFOUND when app never
	// had a leader.
	Leader(ctx context.Context, app string) (*Lease, error)
	// Fence returns a store on the same database whose every write is
	// refused once app's lease has left term, checked inside the write's
	// own transaction, so no write of a deposed leader lands after its
	// successor took over (IsFenced tells the error). Closing it leaves
	// the store it came from open.
	Fence(ctx context.Context, app string, term int64) (Store, error)
}

// CheckLease refuses the keys of a lease call that no lease could have.
func CheckLease(app, holder string) error {
	if err := CheckKeys(Key{"app", app, MaxName}, Key{"lease holder", holder, MaxName}); err != nil {
		return err
	}
	if app == "" || holder == "" {
		return ferry.Errorf(ferry.EINVALID, "a lease needs an app and a holder")
	}
	return nil
}

// CheckLeaseFor is CheckLease of a call that sets how long the lease
// lasts, refusing a duration that could not be renewed in time.
func CheckLeaseFor(app, holder string, ttl time.Duration) error {
	if err := CheckLease(app, holder); err != nil {
		return err
	}
	if ttl < 100*time.Millisecond || ttl > time.Hour {
		return ferry.Errorf(ferry.EINVALID, "a lease lasts 100ms to 1h, not %s", ttl)
	}
	return nil
}

// AlreadyLed is the error of a campaign while another holder leads.
func AlreadyLed(l *Lease) error {
	where := ""
	if l.Address != "" {
		where = " at " + l.Address
	}
	return ferry.Errorf(ferry.ECONFLICT, "%s is led by %s%s (term %d, lease until %s UTC)",
		l.App, l.Holder, where, l.Term, l.ExpiresAt.UTC().Format(time.DateTime+".000"))
}

// Lost is the error of renewing a lease that moved on.
func Lost(app, holder string, term int64, now *Lease) error {
	if now == nil {
		return ferry.Errorf(ferry.ECONFLICT, "%s lost the lead of %s in term %d: the lease is gone", holder, app, term)
	}
	return ferry.Errorf(ferry.ECONFLICT, "%s lost the lead of %s in term %d: %s holds it in term %d", holder, app, term, now.Holder, now.Term)
}

// Moved is the error of a takeover of a lease that is no longer prev's.
func Moved(prev *Lease) error {
	return ferry.Errorf(ferry.ECONFLICT, "the lease of %s is no longer %s's in term %d", prev.App, prev.Holder, prev.Term)
}

// errFenced marks the error of a write a fence refused.
var errFenced = errors.New("fenced")

// IsFenced reports whether err is a write refused because the writer's
// term is over.
func IsFenced(err error) bool { return errors.Is(err, errFenced) }

// FenceMark is the text an engine's fence puts in the error of a refused
// write, so that FencedStore can tell it from other failures.
const FenceMark = "ferry fence:"

// FencedStore is s, a store whose database refuses writes once app's
// lease has left term, with those refusals turned into ECONFLICT errors
// that IsFenced recognises. Engines return it from Fence; reads pass
// through unchanged.
func FencedStore(s Store, app string, term int64) Store {
	return &fenced{Store: s, app: app, term: term}
}

type fenced struct {
	Store
	app  string
	term int64
}

// check turns the engine's refusal into a ferry error; other errors pass.
func (f *fenced) check(err error) error {
	if err == nil || !strings.Contains(err.Error(), FenceMark) {
		return err
	}
	return ferry.Wrap(fmt.Errorf("%w: %w", errFenced, err), ferry.ECONFLICT,
		"this server's term %d as leader of %s is over: another server leads, and a deposed leader writes nothing", f.term, f.app)
}

func (f *fenced) CreateBuild(ctx context.Context, b *ferry.Build) error {
	return f.check(f.Store.CreateBuild(ctx, b))
}
func (f *fenced) UpdateBuild(ctx context.Context, b *ferry.Build) error {
	return f.check(f.Store.UpdateBuild(ctx, b))
}
func (f *fenced) TransitionBuild(ctx context.Context, id int64, from, to ferry.BuildState, reason string, at time.Time) error {
	return f.check(f.Store.TransitionBuild(ctx, id, from, to, reason, at))
}
func (f *fenced) SaveStep(ctx context.Context, s ferry.Step) error {
	return f.check(f.Store.SaveStep(ctx, s))
}
func (f *fenced) AppendLog(ctx context.Context, buildID int64, lines []ferry.LogLine) error {
	return f.check(f.Store.AppendLog(ctx, buildID, lines))
}
func (f *fenced) CreateDeployment(ctx context.Context, d *ferry.Deployment) error {
	return f.check(f.Store.CreateDeployment(ctx, d))
}
func (f *fenced) UpdateDeployment(ctx context.Context, d *ferry.Deployment) error {
	return f.check(f.Store.UpdateDeployment(ctx, d))
}
func (f *fenced) TransitionDeployment(ctx context.Context, id int64, from, to ferry.DeploymentState, errMsg string, at time.Time) error {
	return f.check(f.Store.TransitionDeployment(ctx, id, from, to, errMsg, at))
}
func (f *fenced) AddEvent(ctx context.Context, e *ferry.Event) error {
	return f.check(f.Store.AddEvent(ctx, e))
}
func (f *fenced) CreateToken(ctx context.Context, t *ferry.Token) error {
	return f.check(f.Store.CreateToken(ctx, t))
}
func (f *fenced) RevokeToken(ctx context.Context, name string, at time.Time) error {
	return f.check(f.Store.RevokeToken(ctx, name, at))
}
func (f *fenced) TouchToken(ctx context.Context, id int64, at time.Time) error {
	return f.check(f.Store.TouchToken(ctx, id, at))
}
func (f *fenced) Lock(ctx context.Context, l *ferry.Lock) error {
	return f.check(f.Store.Lock(ctx, l))
}
func (f *fenced) Unlock(ctx context.Context, app, env string) (*ferry.Lock, error) {
	l, err := f.Store.Unlock(ctx, app, env)
	return l, f.check(err)
}
func (f *fenced) AddQuarantine(ctx context.Context, q *ferry.Quarantine) error {
	return f.check(f.Store.AddQuarantine(ctx, q))
}
func (f *fenced) AddDelivery(ctx context.Context, provider, id string, at time.Time) (bool, error) {
	ok, err := f.Store.AddDelivery(ctx, provider, id, at)
	return ok, f.check(err)
}
func (f *fenced) ForgetDelivery(ctx context.Context, provider, id string) error {
	return f.check(f.Store.ForgetDelivery(ctx, provider, id))
}
func (f *fenced) CreateAction(ctx context.Context, a *ferry.Action) error {
	return f.check(f.Store.CreateAction(ctx, a))
}
func (f *fenced) TransitionAction(ctx context.Context, id int64, from, to ferry.ActionState, result string, at time.Time) error {
	return f.check(f.Store.TransitionAction(ctx, id, from, to, result, at))
}
func (f *fenced) CreateActionDeployment(ctx context.Context, actionID int64, d *ferry.Deployment) error {
	return f.check(f.Store.CreateActionDeployment(ctx, actionID, d))
}
func (f *fenced) CreateReleaseRequest(ctx context.Context, r *ferry.ReleaseRequest) error {
	return f.check(f.Store.CreateReleaseRequest(ctx, r))
}
func (f *fenced) AddApproval(ctx context.Context, id int64, a ferry.Approver, seen int, complete bool) error {
	return f.check(f.Store.AddApproval(ctx, id, a, seen, complete))
}
func (f *fenced) CloseReleaseRequest(ctx context.Context, id int64, to ferry.RequestState, result string, at time.Time) error {
	return f.check(f.Store.CloseReleaseRequest(ctx, id, to, result, at))
}
func (f *fenced) SetRequestAction(ctx context.Context, id, actionID int64) error {
	return f.check(f.Store.SetRequestAction(ctx, id, actionID))
}
func (f *fenced) EnqueueNotifications(ctx context.Context, app string, from, upTo int64, ns []*ferry.Notification) error {
	return f.check(f.Store.EnqueueNotifications(ctx, app, from, upTo, ns))
}
func (f *fenced) RecordAttempt(ctx context.Context, id int64, to ferry.NotificationState, errMsg string, next, at time.Time) error {
	return f.check(f.Store.RecordAttempt(ctx, id, to, errMsg, next, at))
}
func (f *fenced) SaveCanary(ctx context.Context, r *ferry.CanaryRun) error {
	return f.check(f.Store.SaveCanary(ctx, r))
}
func (f *fenced) SetCommitTimes(ctx context.Context, id int64, times []time.Time) error {
	return f.check(f.Store.SetCommitTimes(ctx, id, times))
}

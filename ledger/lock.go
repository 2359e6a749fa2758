package ledger

import (
	"context"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
)

// LockStore holds environment locks and quarantined commits. A lock is a
// row while it holds; its history is in the events the controller records.
type LockStore interface {
	// Lock freezes an environment; ECONFLICT when it is already locked.
	Lock(ctx context.Context, l *ferry.Lock) error
	// Unlock lifts a lock and returns it; ENOTFOUND when there is none.
	Unlock(ctx context.Context, app, env string) (*ferry.Lock, error)
	// LockOf returns an environment's lock; ENOTFOUND when unlocked.
	LockOf(ctx context.Context, app, env string) (*ferry.Lock, error)
	// Locks lists an app's locks.
	Locks(ctx context.Context, app string) ([]*ferry.Lock, error)
	// AddQuarantine bars a commit; ECONFLICT when it already is.
	AddQuarantine(ctx context.Context, q *ferry.Quarantine) error
	// Quarantined returns a commit's quarantine; ENOTFOUND when it has none.
	Quarantined(ctx context.Context, app, commit string) (*ferry.Quarantine, error)
	// Quarantines lists an app's quarantines, newest first.
	Quarantines(ctx context.Context, app string) ([]*ferry.Quarantine, error)
}

// PrepareLock checks a lock before it is stored, its text trimmed and
// made storable (StoreText) like every other text the ledger keeps.
func PrepareLock(l *ferry.Lock) error {
	l.Reason, l.Actor = StoreText(strings.TrimSpace(l.Reason), MaxText), StoreText(strings.TrimSpace(l.Actor), MaxPerson)
	if err := CheckEnv(l.App, l.Env); err != nil {
		return err
	}
	switch {
	case l.App == "" || l.Env == "":
		return ferry.Errorf(ferry.EINVALID, "a lock needs an app and an environment")
	case l.Reason == "":
		return ferry.Errorf(ferry.EINVALID, "a lock needs a reason")
	case l.Actor == "":
		return ferry.Errorf(ferry.EINVALID, "a lock needs an actor")
	case l.CreatedAt.IsZero():
		return ferry.Errorf(ferry.EINVALID, "a lock needs its time")
	}
	l.CreatedAt = l.CreatedAt.UTC()
	return nil
}

// AlreadyLocked is the error of locking a locked environment.
func AlreadyLocked(l *ferry.Lock) error {
	return ferry.Errorf(ferry.ECONFLICT, "%s is already locked by %s since %s UTC: %s", l.Env, l.Actor, l.CreatedAt.UTC().Format(time.DateTime), l.Reason)
}

// NotLocked is the error of an unlocked environment.
func NotLocked(env string) error {
	return ferry.Errorf(ferry.ENOTFOUND, "environment %s is not locked", env)
}

// PrepareQuarantine checks a quarantine before it is stored, its text
// trimmed and made storable (StoreText).
func PrepareQuarantine(q *ferry.Quarantine) error {
	q.Reason, q.Actor = StoreText(strings.TrimSpace(q.Reason), MaxText), StoreText(strings.TrimSpace(q.Actor), MaxPerson)
	if err := CheckKeys(Key{"app", q.App, MaxName}, Key{"release", q.Release, MaxRef}); err != nil {
		return err
	}
	switch {
	case q.App == "":
		return ferry.Errorf(ferry.EINVALID, "a quarantine needs an app")
	case !ferry.ValidCommit(q.Commit):
		return ferry.Errorf(ferry.EINVALID, "quarantine: %q is not a full 40-hex commit id", q.Commit)
	case q.Reason == "":
		return ferry.Errorf(ferry.EINVALID, "a quarantine needs a reason")
	case q.Actor == "":
		return ferry.Errorf(ferry.EINVALID, "a quarantine needs an actor")
	case q.CreatedAt.IsZero():
		return ferry.Errorf(ferry.EINVALID, "a quarantine needs its time")
	}
	q.CreatedAt = q.CreatedAt.UTC()
	return nil
}

// AlreadyQuarantined is the error of quarantining a commit twice.
func AlreadyQuarantined(commit string) error {
	return ferry.Errorf(ferry.ECONFLICT, "%s is already quarantined", ferry.ShortSHA(commit))
}

// NotQuarantined is the error of a commit that is not quarantined.
func NotQuarantined(commit string) error {
	return ferry.Errorf(ferry.ENOTFOUND, "%s is not quarantined", ferry.ShortSHA(commit))
}

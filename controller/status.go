package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ferryhq/ferry"
)

// EnvStatus is one environment as the controller sees it: what the ledger
// says runs and what the runtime really runs. It is a domain value; the
// API's wire form of it is api.EnvStatus.
type EnvStatus struct {
	Name        string
	Commit      string
	ShortCommit string
	Digest      string
	Release     string
	Replicas    Replicas
	// State is healthy, rolling, degraded, down or empty.
	State string
	// DeployedAt is when the deployment that runs finished; zero while
	// nothing runs.
	DeployedAt   time.Time
	DeployedBy   string
	DeploymentID int64
	URL          string
	Progress     string
	Pods         []ferry.Replica
	// Err is why the runtime's status could not be read, or nil.
	Err error
	// Alert is a release head pushed to git but not deployed, and why.
	Alert string
	// Lag says, for an environment fed by a branch, that it does not run
	// its branch head's build (convergence's verdict, as status --check
	// reports it), outside a rollout; empty otherwise.
	Lag string
	// Lock is set while the environment is locked.
	Lock *ferry.Lock
}

// Replicas counts an environment's replicas.
type Replicas struct {
	Ready   int
	Desired int
}

// Status reports every environment: what the ledger says runs and what
// the runtime really runs.
func (c *Controller) Status(ctx context.Context) ([]EnvStatus, error) {
	out := make([]EnvStatus, 0, len(c.envs))
	for _, r := range c.envs {
		st := EnvStatus{Name: r.env.Name, URL: r.env.URL, State: "empty"}
		cur, err := c.ledger.Current(ctx, c.cfg.App, r.env.Name)
		switch {
		case err == nil:
			st.Commit, st.ShortCommit, st.Digest, st.Release = cur.Commit, ferry.ShortSHA(cur.Commit), cur.Digest, cur.Release
			st.DeployedAt = cur.FinishedAt
			st.DeployedBy, st.DeploymentID = cur.Actor, cur.ID
			st.Replicas.Desired = cur.Replicas
		case ferry.ErrorCode(err) != ferry.ENOTFOUND:
			return nil, err
		}
		ts, err := r.env.Runtime.Status(ctx)
		if err != nil {
			st.Err = statusError(err)
		} else {
			st.Replicas.Ready = ts.Ready
			st.Pods = ts.Replicas
			if ts.Desired > 0 {
				st.Replicas.Desired = ts.Desired
			}
		}
		r.mu.Lock()
		active, pending, progress := r.active, r.pending, r.progress
		st.Alert = r.alert
		r.mu.Unlock()
		if active == nil && pending == nil {
			switch d, lags, err := c.lagDrift(ctx, r); {
			case err != nil:
				c.log.Warn("status: convergence facts", "env", r.env.Name, "err", err)
			case lags:
				st.Lag = fmt.Sprintf("%s runs %s, not its branch %s's head %s; fix: %s", r.env.Name, d.Got, r.env.Branch, d.Want, d.Fix)
			}
		}
		if l, err := c.locks.LockOf(ctx, c.cfg.App, r.env.Name); err == nil {
			st.Lock = l
		}
		switch {
		case active != nil && (cur == nil || cur.ID != active.ID):
			st.State = "rolling"
			st.Progress = progress.Message
		case cur == nil:
			st.State = "empty"
		case st.Replicas.Ready == 0:
			st.State = "down"
		case st.Replicas.Ready < st.Replicas.Desired:
			st.State = "degraded"
		default:
			st.State = "healthy"
		}
		out = append(out, st)
	}
	return out, nil
}

// statusError is why a runtime's status could not be read, as users may
// see it (ferry.ErrorMessage): the runtime's own message, or for an
// internal error a sentence that keeps it as the hidden cause.
func statusError(err error) error {
	if _, ok := errors.AsType[*ferry.Error](err); ok {
		return err
	}
	return ferry.Wrap(err, ferry.EINTERNAL, "the runtime did not report its status")
}

// Logs streams an environment's replica logs.
func (c *Controller) Logs(ctx context.Context, env string, w io.Writer, tail int, follow bool) error {
	r, err := c.env(env)
	if err != nil {
		return err
	}
	return r.env.Runtime.Logs(ctx, w, tail, follow)
}

// Names lists the environments in configuration order.
func (c *Controller) Names() []string { return c.names() }

// Environment returns the environment named name as configured, and
// whether there is one.
func (c *Controller) Environment(name string) (ferry.Environment, bool) {
	r, ok := c.byName[name]
	if !ok {
		return ferry.Environment{}, false
	}
	return r.env.Environment, true
}

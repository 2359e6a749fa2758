package controller

import (
	"context"
	"io"

	"github.com/ferryhq/ferry"
)

// EnvStatus is one environment in `ferry status`. The JSON shape is a
// contract: fields may be added, never renamed.
type EnvStatus struct {
	Name        string   `json:"name"`
	Commit      string   `json:"commit"`
	ShortCommit string   `json:"shortCommit"`
	Digest      string   `json:"digest"`
	Release     string   `json:"release"`
	Replicas    Replicas `json:"replicas"`
	// State is healthy, rolling, verifying, degraded, down or empty.
	State        string          `json:"state"`
	DeployedAt   string          `json:"deployedAt"`
	DeployedBy   string          `json:"deployedBy"`
	DeploymentID int64           `json:"deploymentId,omitempty"`
	URL          string          `json:"url,omitempty"`
	Progress     string          `json:"progress,omitempty"`
	Pods         []ferry.Replica `json:"pods,omitempty"`
	Error        string          `json:"error,omitempty"`
	// Alert is a release head pushed to git but not deployed, and why.
	Alert string `json:"alert,omitempty"`
	// Lock is set while the environment is locked.
	Lock *ferry.Lock `json:"lock,omitempty"`
}

// Replicas counts an environment's replicas.
type Replicas struct {
	Ready   int `json:"ready"`
	Desired int `json:"desired"`
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
			st.DeployedAt = cur.FinishedAt.UTC().Format("2006-01-02T15:04:05Z")
			st.DeployedBy, st.DeploymentID = cur.Actor, cur.ID
			st.Replicas.Desired = cur.Replicas
		case ferry.ErrorCode(err) != ferry.ENOTFOUND:
			return nil, err
		}
		ts, err := r.env.Runtime.Status(ctx)
		if err != nil {
			st.Error = err.Error()
		} else {
			st.Replicas.Ready = ts.Ready
			st.Pods = ts.Replicas
			if ts.Desired > 0 {
				st.Replicas.Desired = ts.Desired
			}
		}
		r.mu.Lock()
		active, progress := r.active, r.progress
		st.Alert = r.alert
		r.mu.Unlock()
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

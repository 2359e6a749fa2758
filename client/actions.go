package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

// The changes of an environment — promote, rollback, scale, lock, unlock —
// are actions: the server records each, answers with it queued, and runs
// it in the environment's turn. Action follows one.

func (c *Client) queue(ctx context.Context, method, env, route string, in any) (*ferry.Action, error) {
	var out api.ActionBody
	if err := c.do(ctx, method, "/api/v1/envs/"+url.PathEscape(env)+route, in, &out); err != nil {
		return nil, err
	}
	if out.Action == nil {
		return nil, fmt.Errorf("%s %s: the answer holds no action", method, route)
	}
	return out.Action, nil
}

// Promote asks env to take a release of ref (a commit, RC tag, or the
// upstream's name; empty for what the upstream runs).
func (c *Client) Promote(ctx context.Context, env, ref, reason string) (*ferry.Action, error) {
	return c.PromoteDowngrade(ctx, env, ref, reason, false)
}

// PromoteDowngrade is Promote that, with downgrade, may move env back from
// what it runs (promote --allow-downgrade; reason required).
func (c *Client) PromoteDowngrade(ctx context.Context, env, ref, reason string, downgrade bool) (*ferry.Action, error) {
	return c.queue(ctx, http.MethodPost, env, "/promote", api.PromoteRequest{Ref: ref, Reason: reason, AllowDowngrade: downgrade})
}

// PromoteWith is Promote with every parameter of the request: a
// downgrade, an admin's override of release windows and freezes, or a
// wait for the next opening.
func (c *Client) PromoteWith(ctx context.Context, env string, req api.PromoteRequest) (*ferry.Action, error) {
	return c.queue(ctx, http.MethodPost, env, "/promote", req)
}

// Rollback returns env to release to (empty: the previous one).
func (c *Client) Rollback(ctx context.Context, env, to, reason string) (*ferry.Action, error) {
	return c.queue(ctx, http.MethodPost, env, "/rollback", api.RollbackRequest{To: to, Reason: reason})
}

// Scale changes an environment's replica count.
func (c *Client) Scale(ctx context.Context, env string, replicas int, reason string) (*ferry.Action, error) {
	return c.queue(ctx, http.MethodPost, env, "/scale", api.ScaleRequest{Replicas: replicas, Reason: reason})
}

// Lock freezes env.
func (c *Client) Lock(ctx context.Context, env, reason string) (*ferry.Action, error) {
	return c.queue(ctx, http.MethodPost, env, "/lock", api.ReasonRequest{Reason: reason})
}

// Unlock lifts env's lock.
func (c *Client) Unlock(ctx context.Context, env, reason string) (*ferry.Action, error) {
	return c.queue(ctx, http.MethodDelete, env, "/lock", api.ReasonRequest{Reason: reason})
}

// Action returns one action, with the deployment it started.
func (c *Client) Action(ctx context.Context, id int64) (*api.ActionBody, error) {
	var out api.ActionBody
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/actions/%d", id), nil, &out); err != nil {
		return nil, err
	}
	if out.Action == nil {
		return nil, fmt.Errorf("action %d: the answer holds no action", id)
	}
	return &out, nil
}

// Actions lists actions newest first, of env (all when empty) in any of
// states (all when none).
func (c *Client) Actions(ctx context.Context, env string, states []ferry.ActionState, limit int) ([]*ferry.Action, error) {
	q := url.Values{}
	if env != "" {
		q.Set("env", env)
	}
	for _, st := range states {
		q.Add("state", string(st))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out api.ActionList
	err := c.do(ctx, http.MethodGet, "/api/v1/actions?"+q.Encode(), nil, &out)
	return out.Actions, err
}

// Decided polls action id until its turn has come and gone far enough to
// say what it does: it has started a deployment, or it has ended.
func (c *Client) Decided(ctx context.Context, id int64, every time.Duration) (*api.ActionBody, error) {
	for {
		b, err := c.Action(ctx, id)
		if err != nil {
			return nil, err
		}
		if b.Action.DeploymentID != 0 || b.Action.State.Final() {
			return b, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(every):
		}
	}
}

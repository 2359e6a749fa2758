package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ferryhq/ferry/api"
)

// Rollout returns env's canary: the one that runs, or the last one.
func (c *Client) Rollout(ctx context.Context, env string) (*api.CanaryBody, error) {
	var out api.CanaryBody
	if err := c.do(ctx, http.MethodGet, "/api/v1/envs/"+url.PathEscape(env)+"/rollout", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RolloutCommand sends a person's command to env's running canary:
// "pause", "resume", "abort" or "promote" (skip the remaining steps). It
// returns the canary as it is after the command.
func (c *Client) RolloutCommand(ctx context.Context, env, command, reason string) (*api.CanaryBody, error) {
	var out api.CanaryBody
	path := "/api/v1/envs/" + url.PathEscape(env) + "/rollout/" + url.PathEscape(command)
	if err := c.do(ctx, http.MethodPost, path, api.ReasonRequest{Reason: reason}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

// Requests lists release requests newest first, of env (all when empty)
// in any of states (all when none).
func (c *Client) Requests(ctx context.Context, env string, states []ferry.RequestState, limit int) ([]*ferry.ReleaseRequest, error) {
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
	var out api.RequestList
	err := c.do(ctx, http.MethodGet, "/api/v1/requests?"+q.Encode(), nil, &out)
	return out.Requests, err
}

// Request returns release request id with the action that releases it.
func (c *Client) Request(ctx context.Context, id int64) (*api.RequestBody, error) {
	return c.request(ctx, http.MethodGet, fmt.Sprintf("/api/v1/requests/%d", id), nil)
}

// Approve approves release request id; the body's Action is the promote
// action queued when this approval completed it.
func (c *Client) Approve(ctx context.Context, id int64, reason string) (*api.RequestBody, error) {
	return c.request(ctx, http.MethodPost, fmt.Sprintf("/api/v1/requests/%d/approve", id), api.ReasonRequest{Reason: reason})
}

// CancelRequest cancels pending release request id.
func (c *Client) CancelRequest(ctx context.Context, id int64, reason string) (*api.RequestBody, error) {
	return c.request(ctx, http.MethodPost, fmt.Sprintf("/api/v1/requests/%d/cancel", id), api.ReasonRequest{Reason: reason})
}

func (c *Client) request(ctx context.Context, method, path string, in any) (*api.RequestBody, error) {
	var out api.RequestBody
	if err := c.do(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	if out.Request == nil {
		return nil, fmt.Errorf("%s %s: the answer holds no release request", method, path)
	}
	return &out, nil
}

// Notifications lists outgoing notifications newest first, to receiver
// (all when empty) in any of states (all when none).
func (c *Client) Notifications(ctx context.Context, receiver string, states []ferry.NotificationState, limit int) ([]*ferry.Notification, error) {
	q := url.Values{}
	if receiver != "" {
		q.Set("receiver", receiver)
	}
	for _, st := range states {
		q.Add("state", string(st))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out api.NotificationList
	err := c.do(ctx, http.MethodGet, "/api/v1/notifications?"+q.Encode(), nil, &out)
	return out.Notifications, err
}

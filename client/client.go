// Package client is a Go client of ferry's HTTP API; the CLI uses it for
// everything but serving.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/release"
)

// Client talks to one ferry server.
type Client struct {
	// Base is the server's URL, e.g. http://127.0.0.1:7070.
	Base string
	HTTP *http.Client
	// Token is the API token's secret, sent as "Authorization: Bearer …".
	Token string
	// Unreachable says, when the server cannot be reached, where its
	// address came from and how to choose another; empty: the CLI's
	// --server or FERRY_SERVER.
	Unreachable string
}

// New returns a client of the server at base.
func New(base string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server address %q is not an http(s) URL", base)
	}
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{}}, nil
}

// do sends a request and decodes a JSON answer into out; API errors come
// back as *ferry.Error with the server's code and message.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		hint := c.Unreachable
		if hint == "" {
			hint = "is `ferry serve` running? set --server or FERRY_SERVER"
		}
		return nil, fmt.Errorf("cannot reach the ferry server at %s (%s): %w", c.Base, hint, unwrapURL(err))
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		var eb api.ErrorBody
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			return nil, &ferry.Error{Code: eb.Code, Message: eb.Error}
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return resp, nil
}

func unwrapURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// Builds lists builds, newest first.
func (c *Client) Builds(ctx context.Context, branch string, states []string, limit int) ([]*ferry.Build, error) {
	q := url.Values{}
	if branch != "" {
		q.Set("branch", branch)
	}
	for _, s := range states {
		q.Add("state", s)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out api.BuildList
	err := c.do(ctx, http.MethodGet, "/api/v1/builds?"+q.Encode(), nil, &out)
	return out.Builds, err
}

// Build returns one build with its steps.
func (c *Client) Build(ctx context.Context, id int64) (*ferry.Build, error) {
	var out ferry.Build
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/builds/%d", id), nil, &out)
	return &out, err
}

// Trigger queues a build of branch's head (or of commit).
func (c *Client) Trigger(ctx context.Context, branch, commit string) (*api.TriggerResponse, error) {
	var out api.TriggerResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/builds", api.TriggerRequest{Branch: branch, Commit: commit}, &out)
	return &out, err
}

// Cancel stops a queued or running build.
func (c *Client) Cancel(ctx context.Context, id int64, reason string) (*ferry.Build, error) {
	var out ferry.Build
	err := c.do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/builds/%d/cancel", id), api.CancelRequest{Reason: reason}, &out)
	return &out, err
}

// Events lists audit events, newest first.
func (c *Client) Events(ctx context.Context, kind string, buildID int64, limit int) ([]ferry.Event, error) {
	q := url.Values{}
	if kind != "" {
		q.Set("kind", kind)
	}
	if buildID > 0 {
		q.Set("build", strconv.FormatInt(buildID, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out api.EventList
	err := c.do(ctx, http.MethodGet, "/api/v1/events?"+q.Encode(), nil, &out)
	return out.Events, err
}

// BuildLogs reads a build's log records, calling fn for each; with follow
// it returns once the build has ended. The last record carries the state.
func (c *Client) BuildLogs(ctx context.Context, id int64, follow bool, fn func(api.LogRecord) error) error {
	path := fmt.Sprintf("/api/v1/builds/%d/logs", id)
	if follow {
		path += "?follow=1"
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec api.LogRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return fmt.Errorf("build %d log: %w", id, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("build %d log stream: %w", id, err)
	}
	return ctx.Err()
}

// Status reports every environment.
func (c *Client) Status(ctx context.Context) (*api.StatusBody, error) {
	var out api.StatusBody
	err := c.do(ctx, http.MethodGet, "/api/v1/status", nil, &out)
	return &out, err
}

// StatusCheck reports every environment and every drift between the
// ledger, the runtimes, the registry tags and git.
func (c *Client) StatusCheck(ctx context.Context) (*api.StatusBody, error) {
	var out api.StatusBody
	err := c.do(ctx, http.MethodGet, "/api/v1/status?check=1", nil, &out)
	return &out, err
}

// Deployments lists deployments, newest first.
func (c *Client) Deployments(ctx context.Context, env string, limit int) ([]*ferry.Deployment, error) {
	q := url.Values{}
	if env != "" {
		q.Set("env", env)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out api.DeploymentList
	err := c.do(ctx, http.MethodGet, "/api/v1/deployments?"+q.Encode(), nil, &out)
	return out.Deployments, err
}

// Deployment returns one deployment.
func (c *Client) Deployment(ctx context.Context, id int64) (*ferry.Deployment, error) {
	var out ferry.Deployment
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/deployments/%d", id), nil, &out)
	return &out, err
}

// EnvLogs copies an environment's replica logs to w; with follow it keeps
// streaming until ctx ends.
func (c *Client) EnvLogs(ctx context.Context, env string, tail int, follow bool, w io.Writer) error {
	q := url.Values{"tail": {strconv.Itoa(tail)}}
	if follow {
		q.Set("follow", "1")
	}
	resp, err := c.send(ctx, http.MethodGet, "/api/v1/envs/"+url.PathEscape(env)+"/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Quarantine bars a commit or release from promotion and rollback.
func (c *Client) Quarantine(ctx context.Context, ref, reason string) (*ferry.Quarantine, error) {
	var out ferry.Quarantine
	err := c.do(ctx, http.MethodPost, "/api/v1/quarantines", api.QuarantineRequest{Ref: ref, Reason: reason}, &out)
	return &out, err
}

// CheckPush asks how ferry judges the ref updates of a push into the
// app's repository (release.JudgePush): one verdict per update, in
// order. More than api.MaxPushUpdates go in several requests.
func (c *Client) CheckPush(ctx context.Context, env string, updates []release.PushUpdate) ([]release.Verdict, error) {
	var out []release.Verdict
	for batch := range slices.Chunk(updates, api.MaxPushUpdates) {
		var resp api.PushCheck
		if err := c.do(ctx, http.MethodPost, "/api/v1/envs/"+url.PathEscape(env)+"/push-check", api.PushCheckRequest{Updates: batch}, &resp); err != nil {
			return nil, err
		}
		if len(resp.Verdicts) != len(batch) {
			return nil, fmt.Errorf("push check of %s: %d verdicts for %d updates", env, len(resp.Verdicts), len(batch))
		}
		out = append(out, resp.Verdicts...)
	}
	return out, nil
}

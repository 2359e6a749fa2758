package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/dora"
)

// Dora returns the DORA figures of env, or of every production
// environment when env is "", over window (such as "30d"; "" is the
// server's default of 30 days).
func (c *Client) Dora(ctx context.Context, env, window string) ([]dora.Report, error) {
	q := url.Values{}
	if env != "" {
		q.Set("env", env)
	}
	if window != "" {
		q.Set("window", window)
	}
	path := "/api/v1/dora"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out api.DoraBody
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Reports, nil
}

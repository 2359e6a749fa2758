package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ferryhq/ferry/release"
)

// Diff compares what two environments run: the commits in from and not in
// to (Ahead) and those in to and not in from (Behind), newest first.
func (c *Client) Diff(ctx context.Context, from, to string) (*release.Comparison, error) {
	q := url.Values{"from": {from}, "to": {to}}
	var out release.Comparison
	if err := c.do(ctx, http.MethodGet, "/api/v1/diff?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

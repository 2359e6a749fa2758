package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
)

// CreateToken makes a token (an admin's task) and returns it with its
// secret, which the server shows only this once.
func (c *Client) CreateToken(ctx context.Context, name string, role ferry.Role, reason string) (*api.NewToken, error) {
	var out api.NewToken
	err := c.do(ctx, http.MethodPost, "/api/v1/tokens", api.TokenRequest{Name: name, Role: string(role), Reason: reason}, &out)
	return &out, err
}

// Tokens lists every token, revoked ones included, without secrets.
func (c *Client) Tokens(ctx context.Context) ([]*ferry.Token, error) {
	var out api.TokenList
	err := c.do(ctx, http.MethodGet, "/api/v1/tokens", nil, &out)
	return out.Tokens, err
}

// RevokeToken ends the token name at once.
func (c *Client) RevokeToken(ctx context.Context, name, reason string) (*ferry.Token, error) {
	var out ferry.Token
	err := c.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(name), api.RevokeRequest{Reason: reason}, &out)
	return &out, err
}

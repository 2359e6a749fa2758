package api

import (
	"context"
	"net/http"

	"github.com/ferryhq/ferry"
)

// Tokens is what the API asks of access control (auth.Tokens).
type Tokens interface {
	// Lookup finds a token by its secret's hash, for the middleware.
	Lookup(ctx context.Context, hash string) (*ferry.Token, error)
	Create(ctx context.Context, name string, role ferry.Role, actor, reason string) (*ferry.Token, string, error)
	List(ctx context.Context) ([]*ferry.Token, error)
	Revoke(ctx context.Context, name, actor, reason string) (*ferry.Token, error)
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Reason string `json:"reason,omitempty"`
}

// NewToken is the answer to POST /api/v1/tokens: the only time the secret
// is ever shown.
type NewToken struct {
	Token  *ferry.Token `json:"token"`
	Secret string       `json:"secret"`
}

// RevokeRequest is the optional body of DELETE /api/v1/tokens/{name}.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// TokenList is the body of GET /api/v1/tokens; it holds no secret.
type TokenList struct {
	Tokens []*ferry.Token `json:"tokens"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := decode(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if req.Name == "" {
		s.error(w, r, ferry.Errorf(ferry.EINVALID, "name is required"))
		return
	}
	role, err := ferry.ParseRole(req.Role)
	if err != nil {
		s.error(w, r, err)
		return
	}
	tok, secret, err := s.Tokens.Create(r.Context(), req.Name, role, actor(r), req.Reason)
	if err != nil {
		s.error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, NewToken{Token: tok, Secret: secret})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	tokens, err := s.Tokens.List(r.Context())
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, TokenList{Tokens: tokens})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	if err := decodeOptional(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	tok, err := s.Tokens.Revoke(r.Context(), r.PathValue("name"), actor(r), req.Reason)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tok)
}

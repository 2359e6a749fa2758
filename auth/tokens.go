package auth

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ferryhq/ferry"
)

// Store is what Tokens keeps tokens and audit events in (the ledger).
type Store interface {
	CreateToken(ctx context.Context, t *ferry.Token) error
	TokenByHash(ctx context.Context, hash string) (*ferry.Token, error)
	Tokens(ctx context.Context) ([]*ferry.Token, error)
	RevokeToken(ctx context.Context, name string, at time.Time) error
	TouchToken(ctx context.Context, id int64, at time.Time) error
	AddEvent(ctx context.Context, e *ferry.Event) error
}

// DefaultTouchEvery is how often a token's last use is written at most.
const DefaultTouchEvery = time.Minute

// Tokens makes, lists, revokes and looks up tokens in a Store; making and
// revoking each record an audit event (token.created, token.revoked) with
// actor and reason. The API uses it, and so does `ferry token create` on
// the server's machine, opening the ledger itself, to make the first admin
// token. Fields must not change once it is in use.
type Tokens struct {
	Store Store
	// App is the application whose audit trail the events join.
	App string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Random is where secrets come from; crypto/rand when nil.
	Random io.Reader
	// Logger hears lookups the ledger failed and events it did not
	// record; discarded when nil.
	Logger *slog.Logger
	// TouchEvery bounds how often Lookup writes a token's LastUsedAt;
	// DefaultTouchEvery when 0.
	TouchEvery time.Duration
}

func (t *Tokens) now() time.Time {
	if t.Now == nil {
		return time.Now()
	}
	return t.Now()
}

func (t *Tokens) log() *slog.Logger {
	if t.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Logger
}

// reservedNames would let a token pass for ferry itself in the audit trail.
var reservedNames = map[string]bool{"ferry": true}

// Create makes a token named name with role and returns it with its secret,
// which exists nowhere else: show it once. actor is who asks; reason is
// recorded with the event.
func (t *Tokens) Create(ctx context.Context, name string, role ferry.Role, actor, reason string) (*ferry.Token, string, error) {
	if !role.Valid() {
		_, err := ferry.ParseRole(string(role))
		return nil, "", err
	}
	if reservedNames[name] {
		return nil, "", ferry.Errorf(ferry.EINVALID, "token name %q is reserved for ferry itself", name)
	}
	secret, hash, err := Generate(t.Random)
	if err != nil {
		return nil, "", err
	}
	tok := &ferry.Token{Name: name, Role: role, Hash: hash, CreatedAt: t.now(), CreatedBy: actor}
	if err := t.Store.CreateToken(ctx, tok); err != nil {
		return nil, "", err
	}
	t.event(ctx, "token.created", actor, reason, fmt.Sprintf("token %s created with role %s", name, role))
	return tok, secret, nil
}

// List returns every token, newest first; no secret is in them.
func (t *Tokens) List(ctx context.Context) ([]*ferry.Token, error) {
	return t.Store.Tokens(ctx)
}

// Revoke ends the token name at once and returns it as revoked.
func (t *Tokens) Revoke(ctx context.Context, name, actor, reason string) (*ferry.Token, error) {
	if err := t.Store.RevokeToken(ctx, name, t.now()); err != nil {
		return nil, err
	}
	t.event(ctx, "token.revoked", actor, reason, fmt.Sprintf("token %s revoked", name))
	all, err := t.Store.Tokens(ctx)
	if err != nil {
		return nil, err
	}
	for _, tok := range all {
		if tok.Name == name {
			return tok, nil
		}
	}
	return nil, fmt.Errorf("revoke token %s: gone after revocation", name)
}

// Lookup implements the Middleware's Lookup: the token with the hash,
// revoked or not. It writes the token's LastUsedAt when the stored one is
// older than TouchEvery, so a busy token costs a write a minute, not one a
// request; a failed write is logged and does not refuse the request.
func (t *Tokens) Lookup(ctx context.Context, hash string) (*ferry.Token, error) {
	tok, err := t.Store.TokenByHash(ctx, hash)
	if err != nil {
		if ferry.ErrorCode(err) != ferry.ENOTFOUND {
			t.log().Error("look up API token", "err", err)
		}
		return nil, err
	}
	every := t.TouchEvery
	if every <= 0 {
		every = DefaultTouchEvery
	}
	if now := t.now(); !tok.Revoked() && now.Sub(tok.LastUsedAt) >= every {
		if err := t.Store.TouchToken(ctx, tok.ID, now); err != nil {
			t.log().Warn("record API token use", "token", tok.Name, "err", err)
		} else {
			tok.LastUsedAt = now
		}
	}
	return tok, nil
}

func (t *Tokens) event(ctx context.Context, kind, actor, reason, msg string) {
	e := &ferry.Event{Time: t.now(), Actor: actor, Kind: kind, App: t.App, Message: msg, Reason: reason}
	if err := t.Store.AddEvent(ctx, e); err != nil {
		t.log().Error("record event", "kind", kind, "err", err)
	}
}

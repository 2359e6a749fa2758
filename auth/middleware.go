package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/ferryhq/ferry"
)

// Lookup finds the token whose secret hashes to hash: ENOTFOUND when none
// does. A revoked token is returned as such.
type Lookup func(ctx context.Context, hash string) (*ferry.Token, error)

type tokenKey struct{}

// Middleware authenticates every request to next: a request without
// "Authorization: Bearer <secret>", or whose secret is unknown or revoked,
// is answered 401 with a JSON error and never reaches next. The token of
// an accepted request is in its context for Require, Actor and TokenOf.
// Which routes need no token is the caller's business (the API's access
// table wraps only the others).
//
// The secret is never compared: the ledger is searched for its SHA-256.
// A constant-time comparison would be moot here: the time a lookup takes
// can at most tell an attacker something about the hash of what they sent,
// and getting from a hash to a secret that has it is a preimage attack on
// SHA-256.
func Middleware(lookup Lookup, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ferr := bearer(r)
		if ferr != nil {
			refuse(w, ferr)
			return
		}
		tok, err := lookup(r.Context(), Hash(secret))
		switch {
		case ferry.ErrorCode(err) == ferry.ENOTFOUND:
			refuse(w, ferry.Errorf(ferry.EUNAUTHORIZED, "unknown API token"))
			return
		case err != nil:
			// The ledger failed: not the client's fault, and the
			// detail stays in the server's log (lookup logs it).
			writeError(w, http.StatusServiceUnavailable, ferry.Errorf(ferry.EUNAVAILABLE, "cannot check the API token now; try again"))
			return
		case tok.Revoked():
			refuse(w, ferry.Errorf(ferry.EUNAUTHORIZED, "API token %q was revoked", tok.Name))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

// bearer returns the secret of r's Authorization header.
func bearer(r *http.Request) (string, *ferry.Error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ferry.Errorf(ferry.EUNAUTHORIZED, `this API needs a token: send "Authorization: Bearer <token>"`)
	}
	scheme, secret, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// Not echoed: a token sent without its scheme would be.
		return "", ferry.Errorf(ferry.EUNAUTHORIZED, `the Authorization header must be "Bearer <token>"`)
	}
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return "", ferry.Errorf(ferry.EUNAUTHORIZED, `the Authorization header has no token after "Bearer"`)
	}
	return secret, nil
}

func refuse(w http.ResponseWriter, err *ferry.Error) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
	writeError(w, http.StatusUnauthorized, err)
}

// writeError answers with the API's error JSON, {"error": …, "code": …}.
func writeError(w http.ResponseWriter, status int, err *ferry.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ") // as the API's own answers
	_ = enc.Encode(struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}{err.Message, err.Code})
}

// TokenOf returns the token that authenticated r, or nil when none did
// (a public route).
func TokenOf(r *http.Request) *ferry.Token {
	tok, _ := r.Context().Value(tokenKey{}).(*ferry.Token)
	return tok
}

// WithToken returns ctx carrying tok as Middleware leaves it, for code
// that serves requests without the middleware (tests).
func WithToken(ctx context.Context, tok *ferry.Token) context.Context {
	return context.WithValue(ctx, tokenKey{}, tok)
}

// Actor names who made r: its token's name, or "" without a token.
func Actor(r *http.Request) string {
	if tok := TokenOf(r); tok != nil {
		return tok.Name
	}
	return ""
}

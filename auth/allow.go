package auth

import (
	"net/http"

	"github.com/ferryhq/ferry"
)

// Allowed is the one role check of every front end (the API's access
// table and the dashboard's actions): nil when tok may do what needs role
// need, EUNAUTHORIZED without a token or with a revoked one, and EFORBIDDEN
// naming the token, its role and the role needed when its role is lower.
func Allowed(tok *ferry.Token, need ferry.Role) error {
	switch {
	case tok == nil:
		return ferry.Errorf(ferry.EUNAUTHORIZED, "this needs a token with role %s", need)
	case tok.Revoked():
		return ferry.Errorf(ferry.EUNAUTHORIZED, "API token %q was revoked", tok.Name)
	case !tok.Role.Allows(need):
		return ferry.Errorf(ferry.EFORBIDDEN, "token %q has role %s; this needs %s", tok.Name, tok.Role, need)
	}
	return nil
}

// EnvRole is the role changing env needs (scale, promote, roll back, lock,
// unlock): the one its configuration names, or admin when that is empty or
// not a role, so that a wiring mistake closes an environment instead of
// opening it.
func EnvRole(env ferry.Environment) ferry.Role {
	if env.Role.Valid() {
		return env.Role
	}
	return ferry.RoleAdmin
}

// MayChange is Allowed for a change of env: nil when tok has EnvRole(env)
// or a higher role.
func MayChange(tok *ferry.Token, env ferry.Environment) error {
	return Allowed(tok, EnvRole(env))
}

// Require is Allowed for the token that authenticated r (TokenOf).
func Require(r *http.Request, need ferry.Role) error {
	return Allowed(TokenOf(r), need)
}

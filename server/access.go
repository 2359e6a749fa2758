package server

import (
	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/config"
)

// tokens is access control on the server's ledger.
func (s *Server) tokens() *auth.Tokens {
	return &auth.Tokens{Store: s.ledger, App: s.cfg.App, Now: s.opts.Now, Logger: s.log.With("part", "auth")}
}

// envRoles is the role each environment's changes need, as the
// configuration named or defaulted it.
func envRoles(cfg *config.Config) map[string]ferry.Role {
	roles := map[string]ferry.Role{}
	for _, e := range cfg.Environments {
		roles[e.Name] = e.Role
	}
	return roles
}

package server

import (
	"fmt"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/config"
)

// tokens is access control on the server's ledger.
func (s *Server) tokens() *auth.Tokens {
	return &auth.Tokens{Store: s.ledger, App: s.cfg.App, Now: s.opts.Now, Logger: s.log.With("part", "auth")}
}

// envRoles is the role each environment's changes need, from its
// configuration (deployer by default, releaser for an environment promoted
// from another).
func envRoles(cfg *config.Config) (map[string]ferry.Role, error) {
	roles := map[string]ferry.Role{}
	for _, e := range cfg.Environments {
		r, err := ferry.ParseRole(e.Role)
		if err != nil {
			return nil, fmt.Errorf("environment %s: %w", e.Name, err)
		}
		roles[e.Name] = r
	}
	return roles, nil
}

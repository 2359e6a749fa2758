package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
)

// demoTokenName is the name of the admin token `ferry demo` makes.
const demoTokenName = "demo-admin"

// ensureDemoToken makes sure the credentials file at path holds a valid
// token for server, so that the CLI works against the demo without
// anyone copying a secret. A stored token that the ledger knows and has
// not revoked is kept; otherwise a new admin token is made (demo-admin, or
// demo-admin-2, … when the name is taken: names are never reused) and
// stored next to the file's other servers. It returns the token and whether
// it was made now.
func ensureDemoToken(ctx context.Context, store auth.Store, app, server, path string, now func() time.Time) (*ferry.Token, bool, error) {
	creds, err := readCredentials(path)
	if err != nil {
		return nil, false, err
	}
	if stored := creds.Servers[serverKey(server)].Token; stored != "" {
		tok, err := store.TokenByHash(ctx, auth.Hash(stored))
		switch {
		case err == nil && !tok.Revoked():
			return tok, false, nil
		case err != nil && ferry.ErrorCode(err) != ferry.ENOTFOUND:
			return nil, false, err
		}
	}
	tokens := &auth.Tokens{Store: store, App: app, Now: now}
	for i := 1; i <= 100; i++ {
		name := demoTokenName
		if i > 1 {
			name = fmt.Sprintf("%s-%d", demoTokenName, i)
		}
		tok, secret, err := tokens.Create(ctx, name, ferry.RoleAdmin, "ferry demo", "the demo's admin token, for the CLI")
		if ferry.ErrorCode(err) == ferry.ECONFLICT {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if err := saveCredential(path, server, tok.Name, secret); err != nil {
			return nil, false, err
		}
		return tok, true, nil
	}
	return nil, false, fmt.Errorf("no free name for the demo's admin token (%s … %s-100 are taken)", demoTokenName, demoTokenName)
}

package cli

import (
	"fmt"
	"os/user"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/client"
)

// defaultServer is where the CLI looks for ferry without --server or
// FERRY_SERVER.
const defaultServer = "http://127.0.0.1:7070"

// serverFlag adds --server and --token to a client command and returns a
// constructor for the API client. The server is --server, else
// FERRY_SERVER, else the current-server file's (currentserver.go), else
// defaultServer; the token is --token, else FERRY_TOKEN, else the
// credentials file's token for the server (credentials.go).
func serverFlag(cmd *cobra.Command) func() (*client.Client, error) {
	// No default shown: it is decided at run time, by the precedence above.
	addr := cmd.Flags().String("server", "", "ferry server URL (default: env FERRY_SERVER, else the current-server file's, else "+defaultServer+")")
	// No default shown: it would print a secret in --help.
	token := cmd.Flags().String("token", "", "API token (default: env FERRY_TOKEN, else the credentials file's token for the server)")
	return func() (*client.Client, error) {
		src, err := findServer(*addr)
		if err != nil {
			return nil, err
		}
		c, err := client.New(src.url)
		if err != nil {
			return nil, usageErrorf("%s: %v", src.from, err)
		}
		if src.credentials != "" {
			c.Unreachable = fmt.Sprintf("the current server, from %s: start it again (ferry demo), pass --server, or remove that file", src.from)
		}
		if c.Token, err = findTokenIn(*token, c.Base, src.credentials); err != nil {
			return nil, err
		}
		return c, nil
	}
}

func actorName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "cli"
}

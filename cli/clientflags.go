package cli

import (
	"os"
	"os/user"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/client"
)

// defaultServer is where the CLI looks for ferry without --server or
// FERRY_SERVER.
const defaultServer = "http://127.0.0.1:7070"

// serverFlag adds --server and --token to a client command and returns a
// constructor for the API client. The token is --token, else FERRY_TOKEN,
// else the credentials file's token for the server (credentials.go).
func serverFlag(cmd *cobra.Command) func() (*client.Client, error) {
	def := os.Getenv("FERRY_SERVER")
	if def == "" {
		def = defaultServer
	}
	addr := cmd.Flags().String("server", def, "ferry server URL (env FERRY_SERVER)")
	// No default shown: it would print a secret in --help.
	token := cmd.Flags().String("token", "", "API token (default: env FERRY_TOKEN, else the credentials file's token for the server)")
	return func() (*client.Client, error) {
		c, err := client.New(*addr)
		if err != nil {
			return nil, usageErrorf("--server: %v", err)
		}
		if c.Token, err = findToken(*token, c.Base); err != nil {
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

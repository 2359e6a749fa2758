package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/ledger/ledgerdb"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens",
		Long: `Create, list and revoke API tokens. A token has a name (the actor of what it
does) and a role: viewer < deployer < releaser < admin; each allows what the ones
before it allow. Managing tokens needs admin.

With --server (or a token for the server at hand: --token, FERRY_TOKEN or the
credentials file) these commands go through the API. Without one, on the server's
machine, they open the ledger that the configuration (-c) names: that is how the
first admin token is made.`,
	}
	return group(cmd, newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
}

// tokenAdmin is where token commands act: the API or the ledger itself.
type tokenAdmin interface {
	Create(ctx context.Context, name string, role ferry.Role, reason string) (*ferry.Token, string, error)
	List(ctx context.Context) ([]*ferry.Token, error)
	Revoke(ctx context.Context, name, reason string) (*ferry.Token, error)
}

type apiTokens struct{ c *client.Client }

func (a apiTokens) Create(ctx context.Context, name string, role ferry.Role, reason string) (*ferry.Token, string, error) {
	out, err := a.c.CreateToken(ctx, name, role, reason)
	if err != nil {
		return nil, "", err
	}
	return out.Token, out.Secret, nil
}

func (a apiTokens) List(ctx context.Context) ([]*ferry.Token, error) { return a.c.Tokens(ctx) }

func (a apiTokens) Revoke(ctx context.Context, name, reason string) (*ferry.Token, error) {
	return a.c.RevokeToken(ctx, name, reason)
}

// ledgerTokens acts on the ledger directly, as actor.
type ledgerTokens struct {
	t     *auth.Tokens
	actor string
}

func (l ledgerTokens) Create(ctx context.Context, name string, role ferry.Role, reason string) (*ferry.Token, string, error) {
	return l.t.Create(ctx, name, role, l.actor, reason)
}

func (l ledgerTokens) List(ctx context.Context) ([]*ferry.Token, error) { return l.t.List(ctx) }

func (l ledgerTokens) Revoke(ctx context.Context, name, reason string) (*ferry.Token, error) {
	return l.t.Revoke(ctx, name, l.actor, reason)
}

// tokenTarget holds the flags that say where token commands act.
type tokenTarget struct {
	newClient func() (*client.Client, error)
	config    string
}

func (tt *tokenTarget) register(cmd *cobra.Command) {
	tt.newClient = serverFlag(cmd)
	cmd.Flags().StringVarP(&tt.config, "config", "c", envOr("FERRY_CONFIG", "ferry.yaml"),
		"without a server token: the configuration whose ledger to open (env FERRY_CONFIG)")
}

// open returns where the command acts, where that is for people, the
// server URL a new token belongs to, and what to close afterwards:
//   - --server given: the API;
//   - -c given: the ledger;
//   - neither: the API when a token for the server is at hand, else the
//     ledger of FERRY_CONFIG or ./ferry.yaml.
func (tt *tokenTarget) open(cmd *cobra.Command) (admin tokenAdmin, where, server string, closeFn func(), err error) {
	c, err := tt.newClient()
	if err != nil {
		return nil, "", "", nil, err
	}
	flags := cmd.Flags()
	useAPI := flags.Changed("server") || (!flags.Changed("config") && c.Token != "")
	if useAPI {
		return apiTokens{c}, "through " + c.Base, c.Base, func() {}, nil
	}
	if !flags.Changed("config") {
		if _, err := os.Stat(tt.config); errors.Is(err, fs.ErrNotExist) {
			return nil, "", "", nil, usageErrorf("no API token for %s and no %s here: pass --server URL with --token (or FERRY_TOKEN) "+
				"to go through the API, or -c FILE on the server's machine to open its ledger", c.Base, tt.config)
		}
	}
	cfg, err := loadConfig(cmd, tt.config)
	if err != nil {
		return nil, "", "", nil, err
	}
	store, err := ledgerdb.Open(cmd.Context(), cfg.Ledger.URL)
	if err != nil {
		return nil, "", "", nil, fmt.Errorf("open ledger: %w", err)
	}
	where = "in the " + cfg.Ledger.Engine + " ledger"
	if cfg.Ledger.Path != "" {
		where += " " + cfg.Ledger.Path
	}
	tokens := &auth.Tokens{Store: store, App: cfg.App}
	return ledgerTokens{t: tokens, actor: "local:" + actorName()}, where, configServerURL(cfg), func() { store.Close() }, nil
}

// configServerURL is the URL the CLI reaches cfg's server at.
func configServerURL(cfg *config.Config) string {
	if cfg.Server.PublicURL != "" {
		return cfg.Server.PublicURL
	}
	host, port, err := net.SplitHostPort(cfg.Server.Listen)
	if err != nil {
		return "http://" + cfg.Server.Listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func newTokenCreateCmd() *cobra.Command {
	var (
		tt         tokenTarget
		name, role string
		reason     string
		save       bool
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --role ROLE",
		Short: "Make a token; its secret is printed on stdout, only this once",
		Example: `  # the first admin token, on the server's machine, kept for this CLI:
  ferry token create --name alice --role admin -c ferry.yaml --save
  # a token for CI, through the API with an admin token:
  ferry token create --name ci --role deployer --server https://ferry.example.com`,
		Args: cobra.NoArgs,
	}
	tt.register(cmd)
	cmd.Flags().StringVar(&name, "name", "", "the token's name: the actor of what it does (required)")
	cmd.Flags().StringVar(&role, "role", "", "viewer, deployer, releaser or admin (required)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail")
	cmd.Flags().BoolVar(&save, "save", false, "also store the secret in the credentials file for the server, where the CLI finds it")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if name == "" {
			return usageErrorf("--name is required")
		}
		r, err := ferry.ParseRole(role)
		if err != nil {
			return usageErrorf("--role: %s", ferry.ErrorMessage(err))
		}
		admin, where, server, closeFn, err := tt.open(cmd)
		if err != nil {
			return err
		}
		defer closeFn()
		tok, secret, err := admin.Create(cmd.Context(), name, r, reason)
		if err != nil {
			return err
		}
		stderr := cmd.ErrOrStderr()
		fmt.Fprintf(stderr, "created token %q with role %s %s\n", tok.Name, tok.Role, where)
		if save {
			path, err := credentialsPath()
			if err != nil {
				return err
			}
			if err := saveCredential(path, server, tok.Name, secret); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "saved for %s in %s: the CLI uses it there\n", serverKey(server), path)
		} else {
			fmt.Fprintln(stderr, "its secret follows, shown only now: pass it as --token or FERRY_TOKEN")
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), secret)
		return err
	}
	return cmd
}

func newTokenListCmd() *cobra.Command {
	var (
		tt  tokenTarget
		out output
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens, revoked ones too (never their secrets)",
		Args:  cobra.NoArgs,
	}
	tt.register(cmd)
	out.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		admin, _, _, closeFn, err := tt.open(cmd)
		if err != nil {
			return err
		}
		defer closeFn()
		tokens, err := admin.List(cmd.Context())
		if err != nil {
			return err
		}
		now := time.Now()
		return out.print(cmd.OutOrStdout(), api.TokenList{Tokens: tokens}, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "NAME\tROLE\tCREATED\tBY\tLAST USED\tREVOKED")
			for _, t := range tokens {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, ago(t.CreatedAt, now), dash(t.CreatedBy),
					ago(t.LastUsedAt, now), ago(t.RevokedAt, now))
			}
		})
	}
	return cmd
}

func newTokenRevokeCmd() *cobra.Command {
	var (
		tt     tokenTarget
		reason string
	)
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "End a token at once; its name is not reused",
		Args:  cobra.ExactArgs(1),
	}
	tt.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		admin, where, _, closeFn, err := tt.open(cmd)
		if err != nil {
			return err
		}
		defer closeFn()
		tok, err := admin.Revoke(cmd.Context(), args[0], reason)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "revoked token %q (role %s) %s\n", tok.Name, tok.Role, where)
		return err
	}
	return cmd
}

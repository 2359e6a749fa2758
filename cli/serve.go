package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/leader"
	"github.com/ferryhq/ferry/parts"
)

func newServeCmd(sp serverParts) *cobra.Command {
	var (
		path     string
		logLevel string
		logJSON  bool
		leaseTTL time.Duration
		inProc   bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the ferry server: watch the repository, build, and serve the API",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVarP(&path, "config", "c", envOr("FERRY_CONFIG", "ferry.yaml"), "configuration file (env FERRY_CONFIG)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().BoolVar(&logJSON, "log-json", false, "write logs as JSON lines")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", leader.DefaultTTL, "how long the leader's lease lasts unrenewed: a standby takes over a dead leader after it")
	cmd.Flags().BoolVar(&inProc, "no-node", false, "run the local environments in this process, so that they stop with it, instead of in the machine's node (ferry node)")
	cmd.RunE = sp.run(func(p parts.Parts, cmd *cobra.Command, _ []string) error {
		var level slog.Level
		if err := level.UnmarshalText([]byte(logLevel)); err != nil {
			return usageErrorf("--log-level %q: want debug, info, warn or error", logLevel)
		}
		if leaseTTL < time.Second {
			return usageErrorf("--lease-ttl %s: want at least 1s", leaseTTL)
		}
		cfg, err := loadConfig(cmd, path)
		if err != nil {
			return err
		}
		stderr := cmd.ErrOrStderr()
		hopts := &slog.HandlerOptions{Level: level}
		var h slog.Handler = slog.NewTextHandler(stderr, hopts)
		if logJSON {
			h = slog.NewJSONHandler(stderr, hopts)
		}
		logger := slog.New(h)
		logger.Info("configuration", "file", cfg.Path, "config", cfg.Redacted())
		if !inProc {
			leanHeap(logger)
		}
		srv, err := p.NewServer(cfg, parts.ServerOptions{
			Version: version, Logger: logger, LeaseTTL: leaseTTL,
			Progress: func(s string) { logger.Info(s) },
			Node:     !inProc,
		})
		if err != nil {
			return err
		}
		if err := srv.Start(cmd.Context()); err != nil {
			return err
		}
		trimExePages(cmd.Context(), logger)
		return srv.Wait(cmd.Context())
	})
	return cmd
}

// loadConfig reads and checks a configuration file, printing warnings;
// problems come back as one error listing each with its line.
func loadConfig(cmd *cobra.Command, path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		if cerr, ok := errors.AsType[*config.Error](err); ok {
			for _, w := range cerr.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			return nil, &exitError{code: 2, err: fmt.Errorf("invalid configuration:\n%s", cerr.Error())}
		}
		return nil, &exitError{code: 2, err: err}
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
	}
	return cfg, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with ferry.yaml",
	}
	var path string
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate a configuration file without starting anything",
		Long: `Validate a configuration file without starting anything. Every problem is
printed as FILE:LINE: FIELD: MESSAGE; the exit code is 2 when there is any.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, path)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: ok (app %s, environments %v)\n", path, cfg.App, cfg.EnvNames())
			gaps := cfg.RedundancyGaps()
			if len(gaps) == 0 {
				fmt.Fprintln(out, "redundancy: several servers may share this ledger; one leads, the others stand by and take over")
				return nil
			}
			fmt.Fprintln(out, "redundancy: one server only (a second on this ledger refuses to start); several servers would need:")
			for _, g := range gaps {
				fmt.Fprintf(out, "  - %s\n", g)
			}
			return nil
		},
	}
	check.Flags().StringVarP(&path, "config", "c", envOr("FERRY_CONFIG", "ferry.yaml"), "configuration file (env FERRY_CONFIG)")
	var example = &cobra.Command{
		Use:   "example",
		Short: "Print a complete, commented example ferry.yaml",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), config.Example())
			return err
		},
	}
	return group(cmd, check, example)
}

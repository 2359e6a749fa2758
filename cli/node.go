package cli

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/node"
)

// newNodeCmd is `ferry node`: the process, one per machine, that runs the
// local environments' balancers and replicas so that they outlive ferry
// serve (which starts it when none runs).
func newNodeCmd() *cobra.Command {
	var (
		dataDir, path, runc, logLevel string
		takeover                      bool
	)
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run the node: the local environments' balancers and replicas (ferry serve starts it when none runs)",
		Args:  cobra.NoArgs,
	}
	dirFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&dataDir, "data-dir", "", "ferry's data directory (default: the configuration's dataDir)")
		c.Flags().StringVarP(&path, "config", "c", envOr("FERRY_CONFIG", "ferry.yaml"), "configuration file, read for its dataDir when --data-dir is not given (env FERRY_CONFIG)")
	}
	dirFlags(cmd)
	resolveDir := func(c *cobra.Command) (string, error) {
		if dataDir != "" {
			return dataDir, nil
		}
		cfg, err := loadConfig(c, path)
		if err != nil {
			return "", err
		}
		return cfg.DataDir, nil
	}
	cmd.Flags().BoolVar(&takeover, "takeover", false, "take over from the node that runs now: get its listening sockets, start replicas, then let it drain and exit (a node upgrade)")
	cmd.Flags().StringVar(&runc, "runc", "", "the runc binary that contains replicas as root (default: runc in PATH)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		var level slog.Level
		if err := level.UnmarshalText([]byte(logLevel)); err != nil {
			return usageErrorf("--log-level %q: want debug, info, warn or error", logLevel)
		}
		dir, err := resolveDir(c)
		if err != nil {
			return err
		}
		logger := slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
		n, err := node.New(node.Config{
			DataDir: dir, Runc: runc, Takeover: takeover, Version: version, Logger: logger,
			Serving: func() { trimExePages(c.Context(), logger) },
		})
		if err != nil {
			return err
		}
		return n.Run(c.Context())
	}

	release := &cobra.Command{
		Use:   "release ENV",
		Short: "Stop an environment on the node for good (its replicas, balancer and saved state), as when it left ferry.yaml",
		Args:  cobra.ExactArgs(1),
	}
	dirFlags(release)
	release.RunE = func(c *cobra.Command, args []string) error {
		dir, err := resolveDir(c)
		if err != nil {
			return err
		}
		nc := node.NewClient(node.ClientConfig{DataDir: dir})
		defer nc.Close()
		if err := nc.Release(c.Context(), args[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "released %s\n", args[0])
		return nil
	}
	cmd.AddCommand(release)
	return cmd
}

// nodeStart is how ferry serve starts the node of dataDir: this very
// binary, detached.
func nodeStart(dataDir string) (*node.StartConfig, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	return &node.StartConfig{Exe: exe, Args: []string{"node", "--data-dir", dataDir}, DataDir: dataDir}, nil
}

package cli

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/parts"
)

// newNodeCmd is `ferry node`: the process, one per machine, that runs the
// local environments' balancers and replicas so that they outlive ferry
// serve (which starts it when none runs).
func newNodeCmd(sp serverParts) *cobra.Command {
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
	cmd.RunE = sp.run(func(p parts.Parts, c *cobra.Command, _ []string) error {
		var level slog.Level
		if err := level.UnmarshalText([]byte(logLevel)); err != nil {
			return usageErrorf("--log-level %q: want debug, info, warn or error", logLevel)
		}
		dir, err := resolveDir(c)
		if err != nil {
			return err
		}
		logger := slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
		return p.RunNode(c.Context(), parts.NodeOptions{
			DataDir: dir, Runc: runc, Takeover: takeover, Version: version, Logger: logger,
			Serving: func() { trimExePages(c.Context(), logger) },
		})
	})

	release := &cobra.Command{
		Use:   "release ENV",
		Short: "Stop an environment on the node for good (its replicas, balancer and saved state), as when it left ferry.yaml",
		Args:  cobra.ExactArgs(1),
	}
	dirFlags(release)
	release.RunE = sp.run(func(p parts.Parts, c *cobra.Command, args []string) error {
		dir, err := resolveDir(c)
		if err != nil {
			return err
		}
		if err := p.ReleaseEnv(c.Context(), dir, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "released %s\n", args[0])
		return nil
	})
	cmd.AddCommand(release)
	return cmd
}

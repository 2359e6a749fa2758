package server

import (
	"context"
	"fmt"
	"os"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/node"
	"github.com/ferryhq/ferry/parts"
)

// Parts are ferry's server parts as the command line runs them (package
// parts): this package's server, the node, and the signing key. cmd/ferryd
// passes them to the command line; the client binary links none of them.
type Parts struct{}

var _ parts.Parts = Parts{}

// NewServer makes cfg's server; with o.Node its local environments run in
// the machine's node, started from this very executable when none runs.
func (Parts) NewServer(cfg *config.Config, o parts.ServerOptions) (parts.Server, error) {
	opts := Options{Version: o.Version, Logger: o.Logger, LeaseTTL: o.LeaseTTL, Progress: o.Progress}
	if o.Node {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("start node: %w", err)
		}
		opts.Node = &node.StartConfig{Exe: exe, Args: []string{"node", "--data-dir", cfg.DataDir}, DataDir: cfg.DataDir}
	}
	return New(cfg, opts)
}

// RunNode runs the node of o.DataDir until ctx ends.
func (Parts) RunNode(ctx context.Context, o parts.NodeOptions) error {
	n, err := node.New(node.Config{
		DataDir: o.DataDir, Runc: o.Runc, Takeover: o.Takeover,
		Version: o.Version, Logger: o.Logger, Serving: o.Serving,
	})
	if err != nil {
		return err
	}
	return n.Run(ctx)
}

// ReleaseEnv stops env on the node of dataDir for good.
func (Parts) ReleaseEnv(ctx context.Context, dataDir, env string) error {
	nc := node.NewClient(node.ClientConfig{DataDir: dataDir})
	defer nc.Close()
	return nc.Release(ctx, env)
}

// PublicKey is the PEM of the key cfg's server signs images with
// (SigningKey: made in the data directory when there is none yet).
func (Parts) PublicKey(cfg *config.Config) ([]byte, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	key, err := SigningKey(cfg, os.Getenv, os.ReadFile)
	if err != nil {
		return nil, err
	}
	return key.PublicPEM(), nil
}

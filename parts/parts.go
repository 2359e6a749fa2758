// Package parts names what the command line needs of ferry's server parts:
// a server to start, a node to run, the key images are signed with. The
// commands that run them (serve, node, demo, key) ask for a Parts; the
// client binary, cmd/ferry, has none and hands those commands to ferryd,
// whose Parts is server.Parts. That keeps the packages behind them
// (Kubernetes' client, the embedded registry, runc, cosign) out of the
// client, whose every command would otherwise start by initialising them.
//
// The package holds only declarations and imports nothing heavy.
package parts

import (
	"context"
	"log/slog"
	"time"

	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/ledger"
)

// Parts are ferry's server parts.
type Parts interface {
	// NewServer makes the server of cfg, not yet started.
	NewServer(cfg *config.Config, o ServerOptions) (Server, error)
	// RunNode runs the node of a data directory until ctx ends.
	RunNode(ctx context.Context, o NodeOptions) error
	// ReleaseEnv stops env on the node of dataDir for good.
	ReleaseEnv(ctx context.Context, dataDir, env string) error
	// PublicKey is the PEM of the key cfg's server signs images with,
	// made as the server would make it when there is none yet.
	PublicKey(cfg *config.Config) ([]byte, error)
}

// ServerOptions are how the command line sets a server up.
type ServerOptions struct {
	Version  string
	Logger   *slog.Logger
	LeaseTTL time.Duration // the leader lease's; the default when zero
	Progress func(string)  // hears one line per start-up stage, when set
	// Node runs the local environments in the machine's node (started
	// from this executable when none runs), so that they outlive the
	// server; otherwise they run in the server's process.
	Node bool
}

// Server is a server made by NewServer.
type Server interface {
	Start(ctx context.Context) error
	// Wait serves until ctx ends or the server fails, then stops it.
	Wait(ctx context.Context) error
	Close() error
	Ledger() ledger.Store
	URL() string
	ImageRepository() string
}

// NodeOptions are how the command line sets a node up.
type NodeOptions struct {
	DataDir  string
	Runc     string // the runc binary; runc in PATH when empty
	Takeover bool   // take over from the node running now (an upgrade)
	Version  string
	Logger   *slog.Logger
	Serving  func() // called once the node serves
}

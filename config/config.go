// Package config reads and checks ferry.yaml, the one file that describes
// an app's repository, how it is built, where its images go and the
// environments it runs in.
//
// Parse decodes the file through yaml.Node so that every problem names the
// file, the line and the dotted field (`ferry.yaml:14:
// environments.prod.from: unknown environment "dve" (did you mean "dev"?)`),
// and it reports every problem at once as an *Error. A Config that Parse
// returns is valid: defaults are applied, relative paths are resolved
// against the directory of the file, and secrets are references that are
// resolved only when used (SecretRef.Resolve), so they never sit in the
// Config and never reach a log (Config.Redacted).
//
// docs/config.md documents every field; Example returns a complete file.
package config

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
)

// Defaults that a file may leave out.
const (
	DefaultServerListen       = "127.0.0.1:7070"
	DefaultRegistryListen     = "127.0.0.1:5050"
	DefaultDataDir            = "ferry-data"
	DefaultPoll               = 30 * time.Second
	DefaultBuildTimeout       = 10 * time.Minute
	DefaultIntegrationTimeout = 2 * time.Minute
	DefaultPortEnv            = "PORT"
)

// Config is a parsed, checked ferry.yaml with defaults applied.
type Config struct {
	// Path is the absolute path of the file; Dir is its directory, against
	// which relative paths in the file were resolved.
	Path string
	Dir  string

	App string
	// DataDir is the absolute directory holding ferry's state (ledger file,
	// embedded registry storage, unpacked images, replica logs).
	DataDir  string
	Server   Server
	Ledger   Ledger
	Source   Source
	Registry Registry
	Signing  Signing
	Build    Build
	// Environments in the order of the file.
	Environments []*Environment
	// Notifications are the receivers of outgoing notifications.
	Notifications []Receiver

	// Warnings are problems that do not stop ferry, such as a dev
	// environment listening beyond loopback.
	Warnings []Problem
}

// Receiver is one outgoing webhook (`notifications:`): release events of
// the environments in Envs (all when empty) and the topics in Topics
// (all when empty) are POSTed to URL, as ferry's JSON or in Slack's
// incoming-webhook format, signed with Secret like the incoming
// webhooks (X-Ferry-Signature: sha256=<hex HMAC-SHA256 of the body>).
type Receiver struct {
	Name   string
	URL    string
	Format string // "json" or "slack"
	Secret SecretRef
	Envs   []string
	Topics []string
}

// Server is ferry's own HTTP server: API, dashboard, webhooks, metrics.
type Server struct {
	Listen    string // host:port, default 127.0.0.1:7070
	PublicURL string // optional absolute URL users reach the server at
	// Advertise is the host:port other ferry servers on the same ledger
	// reach this one's API at, to forward actions to the leader; empty
	// derives it from the listener (a wildcard host becomes this
	// machine's first non-loopback address).
	Advertise string
}

// Ledger is where ferry records builds, deployments and events.
type Ledger struct {
	// URL as resolved: "sqlite:///abs/path/ledger.db" (query kept) or the
	// postgres URL as written.
	URL string
	// Engine is "sqlite" or "postgres".
	Engine string
	// Path is the absolute SQLite database file; empty for postgres.
	Path string
}

// Source is the app's git repository.
type Source struct {
	// Repo is a URL (file://, https://, http://, ssh://, git://), an
	// scp-like address (git@host:path) or an absolute local path.
	Repo string
	// Poll is the polling interval; 0 disables polling (webhooks only).
	Poll time.Duration
	// WebhookSecret verifies webhook signatures; zero when unset, in which
	// case webhooks are refused.
	WebhookSecret SecretRef
}

// Registry is where images are pushed.
type Registry struct {
	// Image is the repository of an external registry, without tag or
	// digest; empty means the embedded registry (see Config.ImageRepository).
	Image string
	// Listen is the embedded registry's address.
	Listen string
	// Insecure talks plain HTTP to an external registry.
	Insecure bool
}

// Signing is the key ferry signs its images with (docs/trust.md).
type Signing struct {
	// Key is the absolute path of a PEM private key: PKCS#8, SEC 1 ("EC
	// PRIVATE KEY") or cosign's encrypted key (`cosign generate-key-pair`).
	// Empty means the key pair ferry creates in DataDir at its first start
	// (signing.key, cosign.pub).
	Key string
	// Password decrypts an encrypted Key; zero for none.
	Password SecretRef
}

// Build says how a commit becomes an image.
type Build struct {
	// Dir is the directory inside the repository where the test and the
	// build run, slash-separated and relative ("." by default).
	Dir string
	// Test is a shell command run in the commit's worktree; empty means no
	// test step.
	Test string
	// Timeout bounds each step.
	Timeout time.Duration
	// Exactly one of Go and Command is set.
	Go      *GoBuild
	Command string
	// Integration, when set, runs each new image on trial before it may be
	// deployed.
	Integration *Integration
}

// Integration is the build's last gate: the new image runs like a replica
// would, in a throwaway environment of its own (own data directory, so
// its own SQLite database, and a free loopback port), with the local
// runtime settings of the first environment its branch drives; once it is
// ready, Checks run against it, then Command (a shell command in the
// commit's worktree, with FERRY_URL set to the trial's base URL). Only an
// image that passes is tagged and deployable.
type Integration struct {
	// Env is given to the trial run (not the environments' variables: they
	// may name a shared database).
	Env     []EnvVar
	Checks  []ferry.Check
	Command string
	// Timeout bounds the whole step.
	Timeout time.Duration
}

// GoBuild builds a static Go binary into a minimal image, without Docker.
type GoBuild struct {
	Main    string   // package to build, relative to Build.Dir, e.g. ./cmd/birthday-app
	Ldflags string   // text/template over TemplateData
	Env     []string // extra KEY=VALUE for `go build`
}

// Environment is one place the app runs: the domain's environment, as
// decoded and defaulted, with where it runs and the variables it gets.
type Environment struct {
	ferry.Environment
	Runtime Runtime
	// Env is passed to the app, in file order.
	Env []EnvVar
}

// Runtime is where an environment's replicas run; exactly one is set.
type Runtime struct {
	Local      *Local
	Kubernetes *Kubernetes
}

// Kind returns "local" or "kubernetes".
func (r Runtime) Kind() string {
	if r.Kubernetes != nil {
		return "kubernetes"
	}
	return "local"
}

// Local runs replicas as processes on this machine behind a load balancer.
type Local struct {
	Listen string // host:port of the load balancer
	// PortEnv names the environment variable carrying each replica's port
	// number; empty when Args carry the port instead.
	PortEnv string
	// Args are appended to the image's entrypoint; each is a text/template
	// over ReplicaData.
	Args []string
	// Readiness is the path probed on each replica before it gets traffic.
	Readiness string
	// Resources bound each replica when ferry contains them (as root,
	// under runc); zero fields take ferry's defaults.
	Resources ferry.Resources
}

// ReplicaData is what local.args templates see.
type ReplicaData struct {
	Env     string // environment name
	Replica int    // 0-based replica index
	Host    string // replica's loopback host, "127.0.0.1"
	Port    int    // replica's own port
	Addr    string // Host:Port
}

// RenderArgs renders Args for one replica.
func (l *Local) RenderArgs(data ReplicaData) ([]string, error) {
	out := make([]string, len(l.Args))
	for i, a := range l.Args {
		s, err := ferry.Render(fmt.Sprintf("args[%d]", i), a, data)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// Kubernetes points at one Deployment whose container image ferry sets.
type Kubernetes struct {
	Namespace  string
	Deployment string // default: the app name
	Container  string // empty: the Deployment's only container
	// Kubeconfig is an absolute path; empty means in-cluster config, or
	// $KUBECONFIG / ~/.kube/config.
	Kubeconfig string
	Context    string
	// HPA names a HorizontalPodAutoscaler whose bounds `ferry scale`
	// patches instead of the Deployment's replicas; optional.
	HPA string
}

// EnvVar is one environment variable for the app: a plain Value, or a
// Secret resolved when the replicas start.
type EnvVar struct {
	Name   string
	Value  string
	Secret *SecretRef
}

// Load reads and parses the file at path. Problems name the path as given.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Problems: []Problem{{File: path, Message: readError(err)}}}
	}
	return Parse(path, data)
}

func readError(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// Env returns the environment called name.
func (c *Config) Env(name string) (*Environment, bool) {
	for _, e := range c.Environments {
		if e.Name == name {
			return e, true
		}
	}
	return nil, false
}

// Domain returns the environments as the rest of ferry sees them, in file
// order.
func (c *Config) Domain() []ferry.Environment {
	out := make([]ferry.Environment, len(c.Environments))
	for i, e := range c.Environments {
		out[i] = e.Environment
	}
	return out
}

// EnvNames returns the environment names in file order.
func (c *Config) EnvNames() []string {
	names := make([]string, len(c.Environments))
	for i, e := range c.Environments {
		names[i] = e.Name
	}
	return names
}

// Branches returns the branches that drive environments, in file order,
// without duplicates.
func (c *Config) Branches() []string {
	var out []string
	for _, e := range c.Environments {
		if e.Branch != "" && !slices.Contains(out, e.Branch) {
			out = append(out, e.Branch)
		}
	}
	return out
}

// BuildBranches returns the branches whose commits are built: those driving
// environments without an upstream (dev's master, not prod's release).
func (c *Config) BuildBranches() []string {
	var out []string
	for _, e := range c.Environments {
		if e.Branch != "" && e.From == "" {
			out = append(out, e.Branch)
		}
	}
	return out
}

// Downstream returns the environments promoted from name, in file order.
func (c *Config) Downstream(name string) []string {
	var out []string
	for _, e := range c.Environments {
		if e.From == name {
			out = append(out, e.Name)
		}
	}
	return out
}

// RegistryEmbedded reports whether ferry serves the images itself.
func (c *Config) RegistryEmbedded() bool { return c.Registry.Image == "" }

// ImageRepository returns the repository images are pushed to: the
// configured external one, or "<registry.listen>/<app>" for the embedded
// registry (a wildcard host becomes 127.0.0.1).
func (c *Config) ImageRepository() string {
	if !c.RegistryEmbedded() {
		return c.Registry.Image
	}
	return dialAddr(c.Registry.Listen) + "/" + c.App
}

// ServerURL is where a client on this machine reaches ferry's server:
// server.publicURL when set, else server.listen dialled on loopback.
func (c *Config) ServerURL() string {
	if c.Server.PublicURL != "" {
		return strings.TrimRight(c.Server.PublicURL, "/")
	}
	return "http://" + dialAddr(c.Server.Listen)
}

// dialAddr turns a listen address into one a client on this machine can
// dial: an empty or wildcard host becomes 127.0.0.1.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// String is the redacted view, safe to log.
func (c *Config) String() string { return c.Redacted() }

func itoa(i int) string { return strconv.Itoa(i) }

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string { return path + "[" + itoa(i) + "]" }

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

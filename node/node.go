// Package node is ferry's node process (`ferry node`), one per machine:
// it owns each local environment's listener and load balancer and
// supervises its replicas, hosting one runtime/local.Runtime per
// environment, so that the data plane outlives `ferry serve`. ferry talks
// to it as a client (Client, Runtime: a ferry.Runtime) over a unix socket
// that only ferry's user may use: DataDir/node/node.sock, mode 0600 in a
// 0700 directory, every connection's peer uid checked with SO_PEERCRED.
// The protocol is in protocol.go.
//
// What survives what. When ferry exits or is killed, the node keeps
// serving what it last applied; a new ferry adopts it: its first Apply of
// the ledger's spec is a no-op. The node keeps each environment's runtime
// configuration and last applied spec on disk (state.go), so a node
// started after its own crash restores listeners and replicas by itself;
// a stopped node (SIGTERM, SIGINT) stops its replicas and keeps its state
// for the next start. Closing a client's Runtime releases nothing; an
// environment is released for good only by DELETE /v1/envs/{env}
// (`ferry node release ENV`). A second node on the same data directory
// refuses to start (DataDir/node/lock). A new node binary takes over from a
// running one with Takeover (handover.go): it gets the listening sockets,
// starts its own replicas, and the old node drains and exits.
//
// The node never talks to the registry: ferry unpacks an image into the
// shared DataDir/images before it applies it (Client.Apply), and the
// node's runtimes read images from there only.
package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/runtime/local"
)

// Config configures a node.
type Config struct {
	// DataDir is ferry's data directory, shared with ferry serve: the
	// node's socket, lock, log and states are under DataDir/node.
	DataDir string
	// Runc is the runc binary (local.Config.Runc).
	Runc string
	// Takeover replaces the node that serves DataDir now (handover.go)
	// instead of refusing to start beside it.
	Takeover bool
	// Version is reported by /v1/health.
	Version string
	// Serving, when set, is called once the node serves: its environments
	// restored or taken over, its socket answering.
	Serving func()
	Logger  *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Node runs the local environments of one machine.
type Node struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	lock *os.File
	ln   *net.UnixListener
	srv  *http.Server
	// handedOver is closed when a successor has taken the listeners: Run
	// returns, leaving the replicas' state to it.
	handedOver chan struct{}
	handOnce   sync.Once
	// stopping is closed when the node begins to stop: watches end.
	stopping chan struct{}

	mu   sync.Mutex
	envs map[string]*env
}

// env is one environment the node runs.
type env struct {
	rt *local.Runtime
	mu sync.Mutex // one Apply, Scale or state write at a time
	st envState   // what is on disk
}

// nodeDir is the node's directory under the data directory.
func nodeDir(dataDir string) string { return filepath.Join(dataDir, "node") }

// SocketPath is where the node of dataDir listens.
func SocketPath(dataDir string) string { return filepath.Join(nodeDir(dataDir), "node.sock") }

// LogPath is the node's log file when ferry serve starts it.
func LogPath(dataDir string) string { return filepath.Join(nodeDir(dataDir), "node.log") }

// lockPath is the file a running node holds locked.
func lockPath(dataDir string) string { return filepath.Join(nodeDir(dataDir), "lock") }

// New prepares a node: its directory, and the lock that makes it the only
// node of DataDir (with Takeover, the lock is taken once the old node
// has gone, in Run).
func New(cfg Config) (*Node, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("node: data directory required")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	cfg.DataDir = dir
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(nodeDir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := os.Chmod(nodeDir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if n := len(SocketPath(dir)); n > 107 {
		return nil, fmt.Errorf("node: socket path %s is %d bytes, over the 107 a unix socket allows: use a shorter data directory", SocketPath(dir), n)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, now: cfg.Now, envs: map[string]*env{}, handedOver: make(chan struct{}), stopping: make(chan struct{})}
	if !cfg.Takeover {
		if n.lock, err = takeLock(dir, false); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// takeLock locks DataDir/node/lock and writes this process's pid into it;
// wait blocks until the lock is free.
func takeLock(dataDir string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(lockPath(dataDir), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node: lock: %w", err)
	}
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, _ := LockHolder(dataDir)
			return nil, ferry.Errorf(ferry.ECONFLICT, "node: another node (pid %d) already serves %s: stop it, or start this one with --takeover to replace it", pid, dataDir)
		}
		return nil, fmt.Errorf("node: lock: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// LockHolder is the pid of the node that holds dataDir's lock (or held it
// last).
func LockHolder(dataDir string) (int, error) {
	b, err := os.ReadFile(lockPath(dataDir))
	if err != nil {
		return 0, err
	}
	var pid int
	_, err = fmt.Sscan(string(b), &pid)
	return pid, err
}

// Run restores the environments (from the old node with Takeover, else
// from their states on disk), serves the socket until ctx ends or a
// successor took over, and then stops: on ctx's end it stops every
// replica, keeping the states; after a handover it leaves them to the
// successor.
func (n *Node) Run(ctx context.Context) error {
	if n.cfg.Takeover {
		if err := n.takeover(ctx); err != nil {
			return err
		}
	} else if err := n.restore(ctx); err != nil {
		return err
	}
	if n.ln == nil { // a takeover has bound it already
		if err := n.listen(); err != nil {
			n.closeEnvs(context.Background())
			return err
		}
	}
	n.srv = &http.Server{Handler: n.routes(), ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)}
	served := make(chan error, 1)
	go func() { served <- n.srv.Serve(peerChecked{n.ln, n.log}) }()
	n.log.Info("node serving", "socket", SocketPath(n.cfg.DataDir), "pid", os.Getpid(), "envs", n.names())
	if n.cfg.Serving != nil {
		n.cfg.Serving()
	}
	if n.lock == nil { // a takeover: the lock is free once the old node has gone
		go func() {
			f, err := takeLock(n.cfg.DataDir, true)
			if err != nil {
				n.log.Error("node lock", "err", err)
				return
			}
			n.mu.Lock()
			n.lock = f
			n.mu.Unlock()
			n.log.Info("node lock taken: the old node has gone")
		}()
	}
	var err error
	select {
	case <-ctx.Done():
		n.log.Info("node stopping: replicas stop, their state is kept for the next node")
	case <-n.handedOver:
		n.log.Info("node handed over: draining")
	case err = <-served:
		err = fmt.Errorf("node: serve: %w", err)
	}
	close(n.stopping)
	// The listener stays where it is on disk: after a handover the path is
	// the successor's socket.
	n.ln.SetUnlinkOnClose(false)
	began := n.now()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if serr := n.srv.Shutdown(sctx); serr != nil {
		n.log.Warn("node: its API did not shut down in time", "err", serr)
	}
	cancel()
	n.log.Info("node: API closed; closing the environments", "took", n.now().Sub(began).Round(time.Millisecond))
	n.closeEnvs(context.Background())
	n.log.Info("node: environments closed", "took", n.now().Sub(began).Round(time.Millisecond))
	n.mu.Lock()
	if n.lock != nil {
		n.lock.Close()
	}
	n.mu.Unlock()
	return err
}

// listen binds the socket: a new one at a temporary path, renamed over
// the socket path, so that a client never finds the path missing (a
// predecessor may still listen on the old one).
func (n *Node) listen() error {
	path := SocketPath(n.cfg.DataDir)
	tmp := path + ".new"
	os.Remove(tmp)
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("node: listen: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("node: listen: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return fmt.Errorf("node: listen: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	n.ln = ln
	return nil
}

// restore brings back every environment whose state is on disk: its
// listener at once, its replicas concurrently in the background (an Apply
// from ferry waits for them and is then a no-op).
func (n *Node) restore(ctx context.Context) error {
	states, err := loadStates(n.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	for _, st := range states {
		e, err := n.open(st.Config, nil, false)
		if err != nil {
			n.log.Error("restore environment", "env", st.Config.Env, "err", err)
			continue
		}
		e.st.Spec = st.Spec
		if st.Spec == nil {
			continue
		}
		e.mu.Lock()
		go func() {
			defer e.mu.Unlock()
			start := n.now()
			if err := e.rt.Apply(ctx, *st.Spec, nil); err != nil {
				n.log.Error("restore environment", "env", st.Config.Env, "err", err)
				return
			}
			n.log.Info("environment restored", "env", st.Config.Env, "replicas", st.Spec.Replicas, "took", n.now().Sub(start).Round(time.Millisecond))
		}()
	}
	return nil
}

// open starts a runtime for cfg (on ln when handed over) and records it.
func (n *Node) open(cfg EnvConfig, ln net.Listener, takeover bool) (*env, error) {
	lc := local.Config{
		Env:       cfg.Env,
		DataDir:   n.cfg.DataDir,
		Listen:    cfg.Listen,
		Listener:  ln,
		Takeover:  takeover,
		Readiness: cfg.Readiness,
		PortEnv:   cfg.PortEnv,
		Args:      renderArgs(cfg.Env, cfg.Args),
		Images:    unpackedOnly{},
		NoSandbox: cfg.NoSandbox,
		Runc:      n.cfg.Runc,
		Resources: cfg.Resources,
		Logger:    n.log.With("env", cfg.Env),
		Now:       n.now,
	}
	rt, err := local.New(lc)
	if err != nil {
		return nil, err
	}
	e := &env{rt: rt, st: envState{Config: cfg}}
	n.mu.Lock()
	n.envs[cfg.Env] = e
	n.mu.Unlock()
	return e, nil
}

// renderArgs renders local.args for each replica, as ferry serve would.
func renderArgs(env string, args []string) func(int, string, int) ([]string, error) {
	if len(args) == 0 {
		return nil
	}
	l := &config.Local{Args: args}
	return func(replica int, host string, port int) ([]string, error) {
		return l.RenderArgs(config.ReplicaData{Env: env, Replica: replica, Host: host, Port: port, Addr: net.JoinHostPort(host, strconv.Itoa(port))})
	}
}

// unpackedOnly is the node's image source: it pulls nothing, as ferry
// unpacks each image before it applies it.
type unpackedOnly struct{}

func (unpackedOnly) Image(_ context.Context, digest string) (v1.Image, error) {
	return nil, ferry.Errorf(ferry.EUNAVAILABLE, "image %s is not unpacked in the data directory: ferry unpacks an image before it applies it, and the node pulls none itself", ferry.ShortDigest(digest))
}

func (n *Node) names() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	names := make([]string, 0, len(n.envs))
	for name := range n.envs {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (n *Node) env(name string) (*env, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.envs[name]
	if e == nil {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "node: no environment %q: open it first", name)
	}
	return e, nil
}

// closeEnvs stops every environment: balancers first (the requests in
// flight finish), then replicas.
func (n *Node) closeEnvs(ctx context.Context) {
	n.mu.Lock()
	envs := n.envs
	n.envs = map[string]*env{}
	n.mu.Unlock()
	var wg sync.WaitGroup
	for name, e := range envs {
		wg.Go(func() {
			if err := e.rt.Close(ctx); err != nil {
				n.log.Warn("close environment", "env", name, "err", err)
			}
		})
	}
	wg.Wait()
}

// routes are the node's protocol, one handler per call.
func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", n.health)
	mux.HandleFunc("GET /v1/watch", n.watch)
	mux.HandleFunc("PUT /v1/envs/{env}", n.openEnv)
	mux.HandleFunc("DELETE /v1/envs/{env}", n.releaseEnv)
	mux.HandleFunc("POST /v1/envs/{env}/apply", n.apply)
	mux.HandleFunc("POST /v1/envs/{env}/scale", n.scale)
	mux.HandleFunc("GET /v1/envs/{env}/status", n.status)
	mux.HandleFunc("GET /v1/envs/{env}/logs", n.logs)
	mux.HandleFunc("POST /v1/envs/{env}/split", n.split)
	mux.HandleFunc("DELETE /v1/envs/{env}/split", n.endSplit)
	mux.HandleFunc("GET /v1/envs/{env}/figures", n.figures)
	mux.HandleFunc("POST /v1/handover", n.handover)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, ferry.Errorf(ferry.ENOTFOUND, "node: no call %s %s (this node speaks %s)", r.Method, r.URL.Path, apiPrefix))
	})
	return mux
}

func (n *Node) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, Health{PID: os.Getpid(), Version: n.cfg.Version, Envs: n.names()})
}

// watch answers with a stream that ends only when the node stops (or
// dies): ferry holds one open to notice at once that its node is gone.
func (n *Node) watch(w http.ResponseWriter, r *http.Request) {
	s := newStream(w)
	s.send(Event{Text: "watching node " + strconv.Itoa(os.Getpid())})
	select {
	case <-r.Context().Done():
	case <-n.stopping:
		s.end(nil)
	}
}

// openEnv starts the environment, or adopts the one that runs with the
// same configuration; a changed configuration replaces its runtime (its
// replicas stop; ferry's next Apply starts them again).
func (n *Node) openEnv(w http.ResponseWriter, r *http.Request) {
	var cfg EnvConfig
	if err := decode(r.Body, &cfg); err != nil {
		writeError(w, err)
		return
	}
	name := r.PathValue("env")
	if cfg.Env != name {
		writeError(w, ferry.Errorf(ferry.EINVALID, "node: configuration is for environment %q, not %q", cfg.Env, name))
		return
	}
	n.mu.Lock()
	e := n.envs[name]
	n.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		same := sameConfig(e.st.Config, cfg)
		e.mu.Unlock()
		if same {
			writeJSON(w, EnvInfo{Addr: e.rt.Addr(), Sandboxed: e.rt.Sandboxed()})
			return
		}
		n.log.Info("environment's configuration changed: its runtime starts again", "env", name)
		n.mu.Lock()
		delete(n.envs, name)
		n.mu.Unlock()
		if err := e.rt.Close(r.Context()); err != nil {
			n.log.Warn("close environment", "env", name, "err", err)
		}
	}
	e, err := n.open(cfg, nil, false)
	if err != nil {
		writeError(w, err)
		return
	}
	e.mu.Lock()
	err = saveState(n.cfg.DataDir, e.st)
	e.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, EnvInfo{Addr: e.rt.Addr(), Sandboxed: e.rt.Sandboxed()})
}

// sameConfig reports whether two configurations run an environment alike.
func sameConfig(a, b EnvConfig) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// releaseEnv stops the environment for good and forgets its state.
func (n *Node) releaseEnv(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("env")
	e, err := n.env(name)
	if err != nil {
		writeError(w, err)
		return
	}
	n.mu.Lock()
	delete(n.envs, name)
	n.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.rt.Close(r.Context()); err != nil {
		n.log.Warn("close environment", "env", name, "err", err)
	}
	if err := removeState(n.cfg.DataDir, name); err != nil {
		writeError(w, err)
		return
	}
	n.log.Info("environment released", "env", name)
	w.WriteHeader(http.StatusNoContent)
}

// apply rolls the environment to the spec, streaming its progress; the
// spec is kept once it ran.
func (n *Node) apply(w http.ResponseWriter, r *http.Request) {
	e, err := n.env(r.PathValue("env"))
	if err != nil {
		writeError(w, err)
		return
	}
	var spec ferry.Spec
	if err := decode(r.Body, &spec); err != nil {
		writeError(w, err)
		return
	}
	s := newStream(w)
	var smu sync.Mutex // progress may come from the rollout's goroutines
	e.mu.Lock()
	defer e.mu.Unlock()
	err = e.rt.Apply(r.Context(), spec, func(p ferry.Progress) {
		smu.Lock()
		defer smu.Unlock()
		s.send(Event{Progress: &p})
	})
	if err == nil {
		err = e.remember(n.cfg.DataDir, spec)
	}
	smu.Lock()
	defer smu.Unlock()
	s.end(err)
}

// remember saves spec as the environment's last applied one. e.mu is
// held.
func (e *env) remember(dataDir string, spec ferry.Spec) error {
	st := e.st
	st.Spec = &spec
	if err := saveState(dataDir, st); err != nil {
		return err
	}
	e.st = st
	return nil
}

func (n *Node) scale(w http.ResponseWriter, r *http.Request) {
	e, err := n.env(r.PathValue("env"))
	if err != nil {
		writeError(w, err)
		return
	}
	var req ScaleRequest
	if err := decode(r.Body, &req); err != nil {
		writeError(w, err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	err = e.rt.Scale(r.Context(), req.Replicas)
	if err == nil && e.st.Spec != nil {
		spec := *e.st.Spec
		spec.Replicas = req.Replicas
		err = e.remember(n.cfg.DataDir, spec)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (n *Node) status(w http.ResponseWriter, r *http.Request) {
	e, err := n.env(r.PathValue("env"))
	if err != nil {
		writeError(w, err)
		return
	}
	st, err := e.rt.Status(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, st)
}

func (n *Node) logs(w http.ResponseWriter, r *http.Request) {
	e, err := n.env(r.PathValue("env"))
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	tail, err := strconv.Atoi(cmp.Or(q.Get("tail"), "0"))
	if err != nil || tail < 0 {
		writeError(w, ferry.Errorf(ferry.EINVALID, "node: tail %q: want a number ≥ 0", q.Get("tail")))
		return
	}
	follow := q.Get("follow") == "1"
	s := newStream(w)
	err = e.rt.Logs(r.Context(), s, tail, follow)
	if follow && r.Context().Err() != nil {
		return // the client went away: the end of a follow
	}
	s.end(err)
}

// peerChecked accepts only connections from processes of the node's own
// user (SO_PEERCRED), on top of the socket's mode.
type peerChecked struct {
	*net.UnixListener
	log *slog.Logger
}

func (l peerChecked) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && uid == os.Geteuid() {
			return c, nil
		}
		l.log.Warn("node: connection refused: not ferry's user", "uid", uid, "err", err)
		c.Close()
	}
}

// peerUID is the uid of the process at the other end of c.
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if serr != nil {
		return -1, serr
	}
	return int(cred.Uid), nil
}

// split runs a canary beside the environment's stable replicas (the
// local runtime's Split), streaming its progress. A split is not kept in
// the node's state: a node that restarts, or hands over to a new one,
// brings back the stable replicas only, and Figures then answers without
// a canary track, which makes ferry abort the canary.
func (n *Node) split(w http.ResponseWriter, r *http.Request) {
	e, err := n.env(r.PathValue("env"))
	if err != nil {
		writeError(w, err)
		return
	}
	var sp ferry.Split
	if err := decode(r.Body, &sp); err != nil {
		writeError(w, err)
		return
	}
	s := newStream(w)
	var smu sync.Mutex // progress may come from the rollout's goroutines
	e.mu.Lock()
	defer e.mu.Unlock()
	err = e.rt.Split(r.Context(), sp, func(p ferry.Progress) {
		smu.Lock()
		defer smu.Unlock()
		s.send(Event{Progress: &p})
	})
	smu.Lock()
	defer smu.Unlock()
	s.end(err)
}

func (n *Node) endSplit(w http.ResponseWriter, r *http.Request) {
	e, err := n.env(r.PathValue("env"))
	if err != nil {
		writeError(w, err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.rt.EndSplit(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (n *Node) figures(w http.ResponseWriter, r *http.Request) {
	e, err := n.env(r.PathValue("env"))
	if err != nil {
		writeError(w, err)
		return
	}
	f, err := e.rt.Figures(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, f)
}

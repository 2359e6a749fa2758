// Package local is ferry's embedded runtime: it runs an environment's
// replicas as processes on this machine behind a load balancer
// (ferry.Runtime).
//
// Images are pulled by digest and unpacked once per digest under
// DataDir/images/<hex>/ (rootfs/ and config.json), shared by every
// environment. Each replica runs the image's entrypoint on its own loopback
// port, given to it through Config.PortEnv and/or Config.Args, with the
// image's environment, the spec's variables and the port. Its output goes
// to DataDir/envs/<env>/logs/<replica>.log, rotated by size. A replica that
// exits is taken out of the balancer at once and started again with
// exponential backoff (100 ms doubling to 10 s, reset after 30 s of run);
// one whose last three runs ended before it became ready is crash-looping.
//
// When ferry runs as root, each replica runs in an OCI container under
// runc (runc.go): the image's entrypoint as its environment's own uid and
// gid (envUID: every environment has its own, recorded in
// DataDir/runc/ids.json; the image's User is not used, so that /data keeps
// one owner), in its own PID, mount, IPC and UTS namespaces, with no
// capabilities, no new privileges and a seccomp filter like the container
// world's default (seccomp.go), and the environment's Config.Resources as
// cgroup v1 limits (memory, cpu quota, pids). Inside, the image is
// read-only, as every replica of every environment shares it; /data is
// DataDir/envs/<env>/data, the environment's persistent directory (mode
// 0700, owned by its uid: a SQLite database at sqlite:///data/app.db
// survives new digests, and dev and prod never share it); /tmp is the
// replica's own tmpfs (128 MiB, counted in its memory); /proc is its own
// PID namespace's, with the kernel's sensitive files masked or read-only;
// /dev holds only the standard devices; /etc/hosts and /etc/resolv.conf
// are the host's, read-only. The network is the host's: a replica listens
// on a loopback port like any process. The working directory is /data,
// whatever the image says, so a relative path
// (DATABASE_URL=sqlite://app.db) means the environment's own file in both
// modes; FERRY_DATA_DIR names the directory too. Status reports each
// replica's memory and CPU use from its cgroup, and an OOM kill as such.
//
// As any other user, and with Config.NoSandbox, replicas are plain child
// processes of ferry's user, with the environment's data directory as
// working directory and the entrypoint taken from the unpacked
// filesystem; they see the host's filesystem and processes, there is no
// /data and no limit, and New logs a warning that says so.
//
// Stopping a replica sends SIGTERM, then SIGKILL after the rollout's grace
// period: to its process group when plain; when contained, SIGTERM to
// runc, which passes it on, and SIGKILL with `runc kill --all`. The app is
// PID 1 of its namespace, which gets no default signal actions: one that
// does not handle SIGTERM runs until the SIGKILL. Replicas die with ferry: a plain one by its parent-death
// signal (SIGKILL); runc gets SIGTERM when ferry dies and forwards it to
// its replica. A container that outlived ferry anyway (one that ignores
// SIGTERM) is force-deleted by the next New of its environment, so on
// start there is nothing to adopt: the controller's first Apply starts the
// replicas again.
package local

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/lb"
)

// Config configures one environment's local runtime.
type Config struct {
	// Env is the environment's name.
	Env string
	// DataDir is ferry's data directory: unpacked images go to
	// DataDir/images, the environment's logs and data to
	// DataDir/envs/<Env>/{logs,data}.
	DataDir string
	// Listen is the load balancer's address; Readiness the path it
	// probes on each replica ("/" when empty).
	Listen string
	// Listener, when set, is the balancer's listening socket instead of a
	// new one on Listen: one handed over by the node that served the
	// environment before (package node).
	Listener net.Listener
	// Takeover says that another runtime of this environment still runs
	// its containers and will stop them itself (a node handing over to its
	// successor), so New leaves them alone instead of removing what a
	// crashed ferry left; and that it serves the listener until this
	// runtime's replicas are ready, so this balancer accepts only from
	// Serve on.
	Takeover  bool
	Readiness string
	// PortEnv names the environment variable carrying each replica's
	// port; empty when Args carry it.
	PortEnv string
	// Args returns the arguments of replica number replica (0-based among
	// the replicas of one spec), which listens on host:port
	// (the configuration's local.args). When it returns any, they replace the
	// image's Cmd after its Entrypoint. May be nil.
	Args func(replica int, host string, port int) ([]string, error)
	// Images pulls images by digest; *oci.Publisher satisfies it.
	Images ImageSource
	// NoSandbox runs replicas as plain child processes even when ferry
	// runs as root.
	NoSandbox bool
	// Runc is the runc binary that contains replicas as root ("runc",
	// looked up in PATH, when empty).
	Runc string
	// Resources bound each contained replica; zero fields take ferry's
	// defaults (ferry.Resources.WithDefaults).
	Resources ferry.Resources
	// Identity names the uid contained replicas run as (see envUID): Env
	// when empty. Throwaway environments share one, so that they do not
	// each take a number for good.
	Identity string
	// LogSize is the size at which a replica's log file is rotated
	// (10 MiB when 0); LogFiles how many files are kept, the current one
	// included (3 when 0).
	LogSize  int64
	LogFiles int
	// Balancer tunes the load balancer's readiness checks and draining;
	// its Listen, Readiness and Logger are set from this Config. Zero
	// fields take the balancer's defaults.
	Balancer lb.Config
	Logger   *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Runtime runs one environment's replicas behind its load balancer. The
// balancer listens from New on; Close stops everything.
type Runtime struct {
	cfg     Config
	lb      *lb.Balancer
	ln      net.Listener // the balancer's
	images  *imageStore
	log     *slog.Logger
	now     func() time.Time
	dataDir string // DataDir/envs/<env>/data
	logDir  string // DataDir/envs/<env>/logs
	rc      *runc  // nil: plain processes
	// deleting tracks the containers of stopped replicas being deleted.
	deleting sync.WaitGroup

	applyMu sync.Mutex // one Apply or Scale at a time

	mu       sync.Mutex
	replicas []*replica // live: not yet stopped
	spec     *ferry.Spec
	desired  int
	seq      int // last replica number used
	closed   bool
	// split is the canary running beside the stable replicas (split.go).
	split *split
}

var _ ferry.Runtime = (*Runtime)(nil)

// validEnv is what an environment name may be, as it names directories.
var validEnv = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`) })

// New prepares the environment's directories and starts its load
// balancer on cfg.Listen; replicas start with the first Apply.
func New(cfg Config) (*Runtime, error) {
	if !validEnv().MatchString(cfg.Env) {
		return nil, ferry.Errorf(ferry.EINVALID, "local runtime: environment name %q: want letters, digits, '.', '_' or '-'", cfg.Env)
	}
	if cfg.DataDir == "" || cfg.Images == nil || (cfg.Listen == "" && cfg.Listener == nil) {
		return nil, ferry.Errorf(ferry.EINVALID, "local runtime %s: data directory, image source and listen address are required", cfg.Env)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("local runtime %s: %w", cfg.Env, err)
	}
	cfg.DataDir = dataDir
	cfg.Readiness = cmp.Or(cfg.Readiness, ferry.DefaultReadiness)
	cfg.LogSize = cmp.Or(cfg.LogSize, 10<<20)
	cfg.LogFiles = cmp.Or(cfg.LogFiles, 3)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &Runtime{
		cfg:     cfg,
		log:     cfg.Logger.With("env", cfg.Env),
		now:     cfg.Now,
		dataDir: filepath.Join(dataDir, "envs", cfg.Env, "data"),
		logDir:  filepath.Join(dataDir, "envs", cfg.Env, "logs"),
	}
	t.images = &imageStore{dir: filepath.Join(dataDir, "images"), src: cfg.Images, log: cfg.Logger, now: cfg.Now}
	for _, d := range []string{t.dataDir, t.logDir, t.images.dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("local runtime %s: %w", cfg.Env, err)
		}
	}
	if isRoot() && !cfg.NoSandbox {
		if err := t.contain(); err != nil {
			return nil, fmt.Errorf("local runtime %s: %w", cfg.Env, err)
		}
	} else {
		t.log.Warn("replicas run as plain processes of ferry's user: they share its user, filesystem and process namespace, " +
			"have no seccomp filter and no memory, CPU or process limit; as root, ferry runs each in a container under runc")
	}
	t.seq = lastReplicaNumber(t.logDir, cfg.Env)

	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("local runtime %s: lb listen: %w", cfg.Env, err)
		}
	}
	bc := cfg.Balancer
	bc.Listen, bc.Listener, bc.Readiness, bc.Logger = ln.Addr().String(), ln, cfg.Readiness, t.log
	b, err := lb.New(bc)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("local runtime %s: %w", cfg.Env, err)
	}
	t.lb, t.ln = b, ln
	if !cfg.Takeover {
		if err := t.Serve(); err != nil {
			ln.Close()
			return nil, err
		}
	}
	t.log.Info("local runtime ready", "listen", ln.Addr().String(), "isolation", t.isolation(), "serving", !cfg.Takeover)
	return t, nil
}

// Serve makes the balancer accept on its listener: New does it, but for a
// runtime that takes over (Config.Takeover), whose caller calls it once
// the replicas are ready.
func (t *Runtime) Serve() error {
	if err := t.lb.Start(); err != nil {
		return fmt.Errorf("local runtime %s: %w", t.cfg.Env, err)
	}
	return nil
}

// contain sets the runtime up to run replicas under runc: the
// environment's uid, its data directory owned by it, and no container
// left from a previous ferry.
func (t *Runtime) contain() error {
	bin, err := exec.LookPath(cmp.Or(t.cfg.Runc, "runc"))
	if err != nil {
		return fmt.Errorf("as root, replicas run in containers under runc, which is not installed (apt-get install runc), or set NoSandbox: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runcTimeout)
	defer cancel()
	uid, err := envUID(ctx, t.cfg.DataDir, cmp.Or(t.cfg.Identity, t.cfg.Env))
	if err != nil {
		return fmt.Errorf("the environment's uid: %w", err)
	}
	if err := ownTree(t.dataDir, uid); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := os.Chmod(t.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	res := t.cfg.Resources.WithDefaults()
	if t.rc, err = newRunc(bin, t.cfg.DataDir, t.cfg.Env, uid, res, !t.cfg.Takeover, t.log); err != nil {
		return err
	}
	t.log.Info("replicas run under runc", "uid", uid, "resources", res.String())
	return nil
}

// isolation is how the replicas are contained (ferry.Isolation…).
func (t *Runtime) isolation() string {
	if t.rc != nil {
		return ferry.IsolationRunc
	}
	return ferry.IsolationProcess
}

// Addr is the load balancer's address, with the port it really got.
func (t *Runtime) Addr() string { return t.ln.Addr().String() }

// ListenerFile returns a duplicate of the balancer's listening socket, to
// hand over to another process (package node); closing it leaves the
// balancer's own open.
func (t *Runtime) ListenerFile() (*os.File, error) {
	f, ok := t.ln.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("local runtime %s: listener %T has no file", t.cfg.Env, t.ln)
	}
	return f.File()
}

// Sandboxed reports whether replicas run contained, under runc.
func (t *Runtime) Sandboxed() bool { return t.rc != nil }

// ReplicaError says which new replica made a rollout fail, and why.
type ReplicaError struct {
	Env, ID, Digest string
	// Reason is "crash-looping: …", "not ready within …" or
	// "rollout canceled: …".
	Reason string
	// Log is the tail of the replica's output.
	Log []string
}

// Error names the replica and the reason, followed by its last log lines,
// one per line.
func (e *ReplicaError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replica %s (%s) %s", e.ID, ferry.ShortDigest(e.Digest), e.Reason)
	if len(e.Log) > 0 {
		b.WriteString("; last log lines:")
		for _, l := range e.Log {
			b.WriteString("\n  ")
			b.WriteString(l)
		}
	}
	return b.String()
}

// logTail is how many lines of a failed replica's log go into its error.
const logTail = 10

// Apply rolls the environment to spec: see ferry.Runtime. New
// replicas start in batches of at most MaxSurge (default 1) above the
// desired count, or after stopping MaxUnavailable old ones when MaxSurge is
// 0; each batch must be ready within ReadyTimeout before as many old
// replicas are drained and stopped. Replicas whose digest and variables
// match spec are kept. On failure the failing batch is stopped, the
// replicas that already replaced old ones keep serving, and the error is a
// *ReplicaError.
func (t *Runtime) Apply(ctx context.Context, spec ferry.Spec, progress func(ferry.Progress)) error {
	if spec.Env != "" && spec.Env != t.cfg.Env {
		return ferry.Errorf(ferry.EINVALID, "apply to %s: spec is for environment %q", t.cfg.Env, spec.Env)
	}
	if spec.Replicas < 0 {
		return ferry.Errorf(ferry.EINVALID, "apply to %s: %d replicas", t.cfg.Env, spec.Replicas)
	}
	t.applyMu.Lock()
	defer t.applyMu.Unlock()
	ro := spec.Rollout.WithDefaults()
	spec.Rollout = ro
	key := specKey(spec)
	r := &rollout{t: t, spec: spec, key: key, progress: progress}

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ferry.Errorf(ferry.EUNAVAILABLE, "apply to %s: runtime closed", t.cfg.Env)
	}
	s := spec
	t.spec = &s
	t.desired = spec.Replicas
	cur, old := t.partition(key)
	t.mu.Unlock()
	if len(old) == 0 && len(cur) == spec.Replicas {
		return nil
	}

	var img *image
	if spec.Replicas > 0 {
		var err error
		r.report("pulling %s", ferry.ShortDigest(spec.Digest))
		if img, err = t.images.get(ctx, spec.Digest); err != nil {
			return fmt.Errorf("apply to %s: %w", t.cfg.Env, err)
		}
	}
	r.img = img
	return r.run(ctx)
}

// Scale sets the number of replicas of the last applied spec, starting
// new ones (ready before Scale returns) or draining and stopping extra
// ones.
func (t *Runtime) Scale(ctx context.Context, replicas int) error {
	if replicas < 0 {
		return ferry.Errorf(ferry.EINVALID, "scale %s: %d replicas", t.cfg.Env, replicas)
	}
	t.mu.Lock()
	spec := t.spec
	t.mu.Unlock()
	if spec == nil {
		return ferry.Errorf(ferry.ECONFLICT, "scale %s: nothing deployed", t.cfg.Env)
	}
	s := *spec
	s.Replicas = replicas
	return t.Apply(ctx, s, nil)
}

// Status reports the replicas that run, their process state and the
// balancer's view of their readiness.
func (t *Runtime) Status(ctx context.Context) (ferry.Status, error) {
	ready := map[string]bool{}
	for _, b := range t.lb.Backends() {
		ready[b.ID] = b.Ready
	}
	t.mu.Lock()
	rs := slices.Clone(t.replicas)
	desired := t.desired
	t.mu.Unlock()
	reps := make([]ferry.Replica, len(rs))
	for i, r := range rs {
		s := r.snapshot()
		reps[i] = ferry.Replica{
			ID: r.id, Digest: r.digest, Track: trackName(r.track), Addr: s.addr, Restarts: s.restarts,
			Started: s.started, State: s.state,
			Ready:     ready[r.id] && s.state != ferry.ReplicaStopping && s.pid != 0,
			Isolation: t.isolation(), LastExit: s.lastExit,
		}
		if t.rc != nil && s.pid != 0 {
			u := cgroupUsage(t.rc.cgroupPath(r.id))
			reps[i].MemoryBytes, reps[i].MemoryLimitBytes, reps[i].CPUSeconds = u.memory, u.limit, u.cpu
		}
	}
	// The stable replicas say what the environment runs; a split's
	// canary and baseline replicas are listed after them.
	stable := slices.DeleteFunc(slices.Clone(reps), func(r ferry.Replica) bool { return r.Track != ferry.TrackStable })
	st := ferry.NewStatus(desired, stable)
	if st.Digest != "" {
		for _, r := range rs {
			if r.track == lb.DefaultTrack {
				st.Commit = r.commit
				break
			}
		}
	}
	st.Replicas = append(stable, slices.DeleteFunc(reps, func(r ferry.Replica) bool { return r.Track == ferry.TrackStable })...)
	return st, nil
}

// Close stops the load balancer (it stops accepting and waits for the
// requests in flight), then every replica (SIGTERM, SIGKILL after the
// grace period of the last applied spec, at once when ctx ends). A process
// that shares the listening socket (a node taking over) keeps accepting on
// it throughout.
func (t *Runtime) Close(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	rs := slices.Clone(t.replicas)
	grace := ferry.DefaultGrace
	if t.spec != nil {
		grace = t.spec.Rollout.Grace
	}
	t.mu.Unlock()
	err := t.lb.Close()
	t.ln.Close() // closed already, but for a balancer that never served
	t.stop(ctx, rs, grace)
	if t.rc != nil {
		t.deleting.Wait()
		t.rc.close()
	}
	return err
}

// stop stops replicas concurrently and forgets them.
func (t *Runtime) stop(ctx context.Context, rs []*replica, grace time.Duration) {
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() { r.stop(ctx, grace) })
	}
	wg.Wait()
	t.mu.Lock()
	t.replicas = slices.DeleteFunc(t.replicas, func(r *replica) bool { return slices.Contains(rs, r) })
	live := map[string]bool{}
	for _, r := range t.replicas {
		live[r.id] = true
	}
	t.mu.Unlock()
	pruneLogs(t.logDir, live, keepStoppedLogs)
}

// partition splits the live stable replicas that are not stopping into
// those running key and the others (a split's canary and baseline
// replicas are neither). t.mu must be held.
func (t *Runtime) partition(key string) (cur, old []*replica) {
	for _, r := range t.replicas {
		if r.track != lb.DefaultTrack || r.snapshot().state == ferry.ReplicaStopping {
			continue
		}
		if r.key == key {
			cur = append(cur, r)
		} else {
			old = append(old, r)
		}
	}
	return cur, old
}

// newReplica creates and starts a replica of spec numbered index.
func (t *Runtime) newReplica(spec ferry.Spec, key, track string, img *image, index int) (*replica, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "runtime %s closed", t.cfg.Env)
	}
	t.seq++
	id := t.cfg.Env + "-" + strconv.Itoa(t.seq)
	lf, err := openLog(filepath.Join(t.logDir, id+".log"), t.cfg.LogSize, t.cfg.LogFiles)
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", id, err)
	}
	vars := slices.Clone(img.config.Env)
	for _, v := range spec.Vars {
		vars = setEnv(vars, v.Name, v.Value)
	}
	r := &replica{
		id: id, index: index, key: key, track: track, digest: spec.Digest, commit: spec.Commit,
		img: img, vars: vars, t: t, log: lf, port: port, state: ferry.ReplicaStarting,
		ready: make(chan struct{}), looping: make(chan struct{}),
		stopCh: make(chan struct{}), done: make(chan struct{}),
	}
	t.replicas = append(t.replicas, r)
	go r.supervise()
	return r, nil
}

// specKey identifies what a replica runs: the digest and the variables.
// Replicas with another key are replaced by a rollout.
func specKey(spec ferry.Spec) string {
	h := sha256.New()
	io.WriteString(h, spec.Digest)
	for _, v := range spec.Vars {
		fmt.Fprintf(h, "\x00%s=%s", v.Name, v.Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ownTree gives dir, and everything in it when dir itself is not owned yet,
// to uid and gid id.
func ownTree(dir string, id int) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if owner(fi) == id {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, id, id)
	})
}

// keepStoppedLogs is how many stopped replicas' logs are kept.
const keepStoppedLogs = 8

// pruneLogs removes the log files of all but the keep most recently
// written stopped replicas.
func pruneLogs(dir string, live map[string]bool, keep int) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	latest := map[string]time.Time{}
	for _, e := range entries {
		id, _, ok := strings.Cut(e.Name(), ".log")
		if !ok || live[id] {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().After(latest[id]) {
			latest[id] = fi.ModTime()
		}
	}
	ids := make([]string, 0, len(latest))
	for id := range latest {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return latest[b].Compare(latest[a]) })
	for _, id := range ids[min(keep, len(ids)):] {
		files, _ := filepath.Glob(filepath.Join(dir, id+".log*"))
		for _, f := range files {
			os.Remove(f)
		}
	}
}

// lastReplicaNumber is the highest n of the <env>-<n>.log files in dir, so
// that replica ids are not reused across restarts of ferry.
func lastReplicaNumber(dir, env string) int {
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		id, _, ok := strings.Cut(e.Name(), ".log")
		if !ok {
			continue
		}
		if s, ok := strings.CutPrefix(id, env+"-"); ok {
			if k, err := strconv.Atoi(s); err == nil {
				n = max(n, k)
			}
		}
	}
	return n
}

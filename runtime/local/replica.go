package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/lb"
)

// Restarts back off exponentially from backoffMin to backoffMax; a run
// that lasted backoffReset starts the sequence over. A replica whose last
// crashLoopRuns runs all ended before it became ready is crash-looping.
const (
	backoffMin    = 100 * time.Millisecond
	backoffMax    = 10 * time.Second
	backoffReset  = 30 * time.Second
	crashLoopRuns = 3
)

// nextBackoff is the delay before the next restart, given the previous
// delay (0 for none yet) and how long the run that just ended lasted.
func nextBackoff(prev, ran time.Duration) time.Duration {
	if prev == 0 || ran >= backoffReset {
		return backoffMin
	}
	return min(prev*2, backoffMax)
}

// replica is one supervised copy of the app: a process restarted with
// backoff until stopped, registered with the balancer while it runs.
type replica struct {
	id     string
	index  int // the replica's number among those of its spec, for Args
	key    string
	track  string // balancer track: lb.DefaultTrack (stable), or a split's (split.go)
	digest string
	commit string
	img    *image
	vars   []string // environment: image's, then the spec's
	t      *Runtime
	log    *logFile

	ready   chan struct{} // closed when first ready
	looping chan struct{} // closed when first crash-looping
	stopCh  chan struct{} // closed by stop
	done    chan struct{} // closed when the supervisor returned

	mu        sync.Mutex
	port      int
	state     string
	restarts  int
	started   time.Time
	proc      *os.Process
	stopping  bool
	failures  int         // consecutive runs that ended before ready
	lastExit  *ferry.Exit // how the last run ended
	readyOnce sync.Once
	loopOnce  sync.Once
}

// snapshot is a replica's state at one moment.
type snapshot struct {
	state    string
	restarts int
	started  time.Time
	addr     string
	pid      int
	lastExit *ferry.Exit
	failures int
}

func (r *replica) snapshot() snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := snapshot{state: r.state, restarts: r.restarts, started: r.started,
		addr: addr(r.port), lastExit: r.lastExit, failures: r.failures}
	if r.proc != nil {
		s.pid = r.proc.Pid
	}
	return s
}

func addr(port int) string { return net.JoinHostPort(loopback, strconv.Itoa(port)) }

// loopback is the host replicas listen on.
const loopback = "127.0.0.1"

// supervise runs the replica's process until stop: it starts it, adds it
// to the balancer, and when it exits takes it out at once and starts it
// again after the backoff.
func (r *replica) supervise() {
	defer close(r.done)
	var delay time.Duration
	for {
		cmd, err := r.start()
		if errors.Is(err, errStopping) {
			return
		}
		var ran time.Duration
		becameReady := false
		if err != nil {
			r.event("start failed: %v", err)
			r.t.log.Warn("replica start failed", "replica", r.id, "err", err)
			r.mu.Lock()
			r.lastExit = &ferry.Exit{Reason: ferry.ExitStartFailed, Message: "start failed: " + err.Error(), Time: r.t.now()}
			r.mu.Unlock()
		} else {
			becameReady, ran = r.wait(cmd)
		}

		r.mu.Lock()
		if r.stopping {
			r.mu.Unlock()
			return
		}
		if becameReady {
			r.failures = 0
		} else {
			r.failures++
		}
		delay = nextBackoff(delay, ran)
		r.restarts++
		r.state = ferry.ReplicaStarting
		if r.failures >= crashLoopRuns {
			r.state = ferry.ReplicaCrashLooping
			r.loopOnce.Do(func() { close(r.looping) })
		}
		failures := r.failures
		r.mu.Unlock()
		r.event("restarting in %v (restart %d, %d runs in a row ended before ready)", delay, r.restarts, failures)

		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-r.stopCh:
			timer.Stop()
			return
		}
	}
}

// wait follows one run of the process: once it listens it registers it
// with the balancer (whose first readiness check can then already pass),
// notes when it becomes ready, and on exit takes it out of the balancer.
func (r *replica) wait(cmd *exec.Cmd) (becameReady bool, ran time.Duration) {
	start := r.t.now()
	r.mu.Lock()
	a := addr(r.port)
	r.mu.Unlock()
	runCtx, cancel := context.WithCancel(context.Background())
	readyc := make(chan bool, 1)
	go func() {
		if !waitListening(runCtx, a) {
			readyc <- false
			return
		}
		r.mu.Lock()
		if r.stopping {
			// stop has drained it already, or is about to.
			r.mu.Unlock()
			readyc <- false
			return
		}
		r.t.lb.AddTo(r.track, r.id, a)
		r.mu.Unlock()
		err := r.t.lb.WaitReady(runCtx, r.id)
		if err == nil {
			r.markReady()
		}
		readyc <- err == nil
	}()
	werr := cmd.Wait()
	cancel()
	becameReady = <-readyc
	end := r.t.now()
	ran = end.Sub(start)
	ex := r.exit(werr, end)

	r.mu.Lock()
	r.proc = nil
	stopping := r.stopping
	r.lastExit = ex
	r.mu.Unlock()
	if rc := r.t.rc; rc != nil {
		// The next run reuses the container's name: delete it first. A
		// stopped replica's name is never used again, so its container is
		// deleted without holding up the rollout; Close waits for it.
		del := func() {
			if err := rc.delete(r.id); err != nil {
				r.t.log.Warn("replica exited", "replica", r.id, "err", err)
			}
		}
		if stopping {
			r.t.deleting.Go(del)
		} else {
			del()
		}
	}
	how := ex.Message
	if !stopping {
		// A dead process gets no more traffic: take it out now rather
		// than after failed readiness checks.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r.t.lb.Remove(ctx, r.id)
		cancel()
		r.t.log.Warn("replica exited", "replica", r.id, "after", ran.Round(time.Millisecond), "exit", how)
	}
	r.event("exited after %v: %s", ran.Round(time.Millisecond), how)
	return becameReady, ran
}

// listenPoll is how often a starting replica's port is tried.
const listenPoll = 5 * time.Millisecond

// waitListening reports, once it does, that something accepts TCP
// connections on addr; false when ctx ended first.
func waitListening(ctx context.Context, addr string) bool {
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(listenPoll):
		}
	}
}

// exit says how a run ended, given what waiting for its process returned.
// Under runc it reads the container's cgroup for an OOM kill (the caller
// deletes the container after); runc's own status is the replica's,
// 128+n when signal n killed it.
func (r *replica) exit(werr error, at time.Time) *ferry.Exit {
	ex := &ferry.Exit{Reason: ferry.ExitCode, Time: at}
	ee, isExit := errors.AsType[*exec.ExitError](werr)
	var ws syscall.WaitStatus
	if isExit {
		ws, _ = ee.Sys().(syscall.WaitStatus)
	}
	switch {
	case werr == nil, errors.Is(werr, exec.ErrWaitDelay):
		// It exited 0; a child of it held its output open.
	case !isExit:
		ex.Reason, ex.Message = ferry.ExitStartFailed, werr.Error()
		return ex
	case ws.Signaled():
		ex.Reason, ex.Signal = ferry.ExitSignal, signalName(ws.Signal())
	case r.t.rc != nil && ws.ExitStatus() > 128 && ws.ExitStatus() < 128+65:
		ex.Reason, ex.Signal = ferry.ExitSignal, signalName(syscall.Signal(ws.ExitStatus()-128))
	default:
		ex.Code = ws.ExitStatus()
	}
	if rc := r.t.rc; rc != nil && ex.Signal == "SIGKILL" && oomKills(rc.cgroupPath(r.id)) > 0 {
		ex.Reason = ferry.ExitOOM
	}
	switch ex.Reason {
	case ferry.ExitOOM:
		ex.Message = "OOM-killed at its memory limit of " + ferry.FormatMemory(r.t.rc.res.Memory)
	case ferry.ExitSignal:
		ex.Message = "killed by " + ex.Signal
	default:
		ex.Message = fmt.Sprintf("exit status %d", ex.Code)
	}
	return ex
}

// signalName is a signal's name, SIGKILL.
func signalName(sig syscall.Signal) string {
	if n := unixSignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}

func (r *replica) markReady() {
	r.mu.Lock()
	if !r.stopping {
		r.state = ferry.ReplicaRunning
		r.failures = 0
	}
	r.mu.Unlock()
	r.readyOnce.Do(func() { close(r.ready) })
}

var errStopping = errors.New("replica stopping")

// start starts one run of the process.
func (r *replica) start() (*exec.Cmd, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return nil, errStopping
	}
	if !portFree(r.port) {
		// Someone took the port while the replica was down.
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		r.event("port %d is taken, moving to %d", r.port, p)
		r.port = p
	}
	cmd, err := r.command()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = r.log
	cmd.Stderr = r.log
	// A grandchild holding the output open must not stall the supervisor.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r.proc = cmd.Process
	r.started = r.t.now()
	if r.state != ferry.ReplicaCrashLooping {
		r.state = ferry.ReplicaStarting
	}
	mode := "as a plain process"
	if r.t.rc != nil {
		mode = fmt.Sprintf("under runc as uid %d", r.t.rc.uid)
	}
	r.event("started %s, pid %d, on %s (%s)", mode, cmd.Process.Pid, addr(r.port), ferry.ShortDigest(r.digest))
	return cmd, nil
}

// command builds the process of one run.
func (r *replica) command() (*exec.Cmd, error) {
	cfg := r.img.config
	argv := append(append([]string(nil), cfg.Entrypoint...), cfg.Cmd...)
	if r.t.cfg.Args != nil {
		extra, err := r.t.cfg.Args(r.index, loopback, r.port)
		if err != nil {
			return nil, fmt.Errorf("args: %w", err)
		}
		if len(extra) > 0 {
			// As with a container runtime, arguments replace the
			// image's Cmd.
			argv = append(append([]string(nil), cfg.Entrypoint...), extra...)
		}
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("image %s has no entrypoint or command", ferry.ShortDigest(r.digest))
	}
	env := r.vars
	if r.t.cfg.PortEnv != "" {
		env = setEnv(env, r.t.cfg.PortEnv, strconv.Itoa(r.port))
	}
	// The working directory is the environment's data directory in both
	// modes (/data in a container), so a relative path such as
	// DATABASE_URL=sqlite://app.db is the environment's own file, kept
	// across digests; FERRY_DATA_DIR names it too.
	if r.t.rc != nil {
		env = setEnv(env, "FERRY_DATA_DIR", dataMount)
		return r.t.rc.runCommand(container{ID: r.id, Rootfs: r.img.rootfs, Data: r.t.dataDir, Argv: argv, Env: env})
	}
	exe, err := lookPath(argv[0], env, r.img.rootfs)
	if err != nil {
		return nil, err
	}
	env = setEnv(env, "FERRY_DATA_DIR", r.t.dataDir)
	cmd := &exec.Cmd{
		Path:        filepath.Join(r.img.rootfs, exe),
		Args:        argv,
		Env:         env,
		Dir:         r.t.dataDir,
		SysProcAttr: plainSysProcAttr(),
	}
	return cmd, nil
}

// stop drains the replica from the balancer, then ends its process:
// SIGTERM, and SIGKILL after grace or when ctx ends.
func (r *replica) stop(ctx context.Context, grace time.Duration) {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		<-r.done
		return
	}
	r.stopping = true
	r.state = ferry.ReplicaStopping
	close(r.stopCh)
	r.mu.Unlock()

	start := r.t.now()
	if err := r.t.lb.Remove(ctx, r.id); err != nil && !errors.Is(err, lb.ErrUnknownBackend) && !errors.Is(err, lb.ErrClosed) {
		r.t.log.Warn("replica drain", "replica", r.id, "err", err)
	}
	drained := r.t.now()
	r.signal(syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-r.done:
	case <-timer.C:
		r.event("still running %v after SIGTERM: SIGKILL", grace)
		r.signal(syscall.SIGKILL)
		<-r.done
	case <-ctx.Done():
		r.signal(syscall.SIGKILL)
		<-r.done
	}
	r.mu.Lock()
	r.state = ferry.ReplicaStopped
	r.mu.Unlock()
	end := r.t.now()
	r.t.log.Info("replica stopped", "replica", r.id,
		"drain", drained.Sub(start).Round(time.Millisecond), "exit", end.Sub(drained).Round(time.Millisecond))
	r.event("stopped")
	r.log.Close()
}

// signal sends sig to the replica's process group, if it runs. Under runc
// the group is runc's, which passes SIGTERM on to the replica; SIGKILL,
// which runc cannot pass on, goes to every process of the container by
// `runc kill --all` (to runc itself while it has not created the
// container yet).
func (r *replica) signal(sig syscall.Signal) {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p == nil {
		return
	}
	if rc := r.t.rc; rc != nil && sig == syscall.SIGKILL {
		err := rc.kill(r.id, signalName(sig), true)
		if err == nil {
			return
		}
		r.event("%v; signalling runc", err)
	}
	// Signalling the process first is safe against a reused pid; only
	// when it still exists is its group signalled too.
	if err := p.Signal(sig); errors.Is(err, os.ErrProcessDone) {
		return
	}
	signalGroup(p, sig)
}

// freePort returns a loopback TCP port that nothing listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portFree reports whether port can be listened on.
func portFree(port int) bool {
	l, err := net.Listen("tcp", addr(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// setEnv returns env with name set to value, replacing earlier settings.
func setEnv(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != name {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}

// lookPath finds an entrypoint the way a container runtime does: a name
// with a slash is taken as it is, anything else is looked up in the PATH
// of the image's environment. Paths are inside the image, found under
// rootfs on the host ("/" once chrooted).
func lookPath(name string, env []string, rootfs string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	dirs := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			dirs = v
		}
	}
	for _, d := range filepath.SplitList(dirs) {
		p := filepath.Join("/", d, name)
		if fi, err := os.Stat(filepath.Join(rootfs, p)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("entrypoint %q: not found in PATH %s", name, dirs)
}

// exitText is how a run ended, in words.
func exitText(e *ferry.Exit) string {
	if e == nil {
		return "none yet"
	}
	return e.Message
}

// event records what the runtime did to the replica in the runtime's own
// log (the node's), never in the replica's: `ferry logs ENV` shows only
// the app's output.
func (r *replica) event(format string, args ...any) {
	r.t.log.Info("replica: "+fmt.Sprintf(format, args...), "replica", r.id)
}

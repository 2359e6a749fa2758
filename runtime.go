package ferry

import (
	"context"
	"io"
	"time"
)

// Runtime runs one environment's replicas: the local runtime (processes
// behind a load balancer, package runtime/local) or Kubernetes (a
// Deployment, package runtime/kube). The controller is its only caller for
// changes; the runtimes implement it.
//
// Call order and concurrency. The controller creates one Runtime per
// environment and is its only caller for changes: Apply and Scale are
// never called concurrently with each other for the same environment (the
// controller runs one rollout per environment at a time). Status and Logs
// may be called at any time, concurrently with Apply, from other
// goroutines (the API). Close is called once, last; after it no method is
// called.
//
// Apply is idempotent: applying the spec that already runs, with the same
// replica count, returns at once without restarting anything. On start the
// controller calls Apply with the spec of the environment's current
// deployment from the ledger, which adopts what a runtime still runs or
// starts it again.
type Runtime interface {
	// Apply rolls the environment to spec with zero downtime: surge new
	// replicas within the rollout bounds, wait for each to be ready within
	// spec.Rollout.ReadyTimeout, route traffic to it, drain and stop an old
	// one, until every replica runs spec.Digest. It reports progress as it
	// goes. When a new replica crash-loops or is not ready in time, Apply
	// stops the new replicas it started, leaves the old ones serving, and
	// returns an error; the controller then reverts by applying the
	// previous spec. The environment serves throughout.
	Apply(ctx context.Context, spec Spec, progress func(Progress)) error
	// Scale sets the number of replicas of the running digest without
	// downtime.
	Scale(ctx context.Context, replicas int) error
	// Status reports what really runs.
	Status(ctx context.Context) (Status, error)
	// Logs writes the replicas' recent output (tail lines each), then, with
	// follow, new lines until ctx ends.
	Logs(ctx context.Context, w io.Writer, tail int, follow bool) error
	// Close releases the runtime. For the local runtime it stops the
	// replicas (SIGTERM, then SIGKILL after the grace period) and the load
	// balancer.
	Close(ctx context.Context) error
}

// Spec is what an environment should run.
type Spec struct {
	Env    string
	Commit string
	// Image is the repository; Digest the manifest digest. Runtimes always
	// run repo@digest, never a tag.
	Image    string
	Digest   string
	Replicas int
	// Release is the release tag, for annotations; empty for dev.
	Release string
	// DeploymentID is recorded on what runs, so Status can say which
	// deployment put it there.
	DeploymentID int64
	// Vars is the environment given to the app, with secrets resolved.
	Vars    []Var
	Rollout Rollout
}

// Var is one environment variable for the app, its secrets resolved.
type Var struct{ Name, Value string }

// Progress is one step of a rollout, for the ledger and the CLI.
type Progress struct {
	Time    time.Time
	Message string
	// Ready and Updated count the replicas ready in total and those
	// running the new digest.
	Ready, Updated, Desired int
}

// Status is what an environment really runs.
type Status struct {
	// Digest is the digest every replica runs; empty when they differ or
	// none runs.
	Digest   string
	Commit   string
	Ready    int
	Desired  int
	Replicas []Replica
}

// NewStatus derives Ready and Digest from the replicas: the one rule both
// runtimes report by. The caller sets Commit when it knows the commit of
// Digest.
func NewStatus(desired int, replicas []Replica) Status {
	st := Status{Desired: desired, Replicas: replicas}
	for i, r := range replicas {
		if r.Ready {
			st.Ready++
		}
		if i == 0 {
			st.Digest = r.Digest
		} else if r.Digest != st.Digest {
			st.Digest = ""
		}
	}
	return st
}

// Replica is one running copy of the app.
type Replica struct {
	ID       string    `json:"id"`
	Digest   string    `json:"digest"`
	Addr     string    `json:"addr,omitempty"`
	Ready    bool      `json:"ready"`
	Restarts int       `json:"restarts"`
	Started  time.Time `json:"started,omitzero"`
	// State is one of the Replica… states below.
	State string `json:"state"`
	// Isolation says how the replica is contained: IsolationRunc or
	// IsolationProcess; empty from runtimes that do not say (Kubernetes).
	Isolation string `json:"isolation,omitempty"`
	// LastExit says how its last run ended; nil before one has.
	LastExit *Exit `json:"lastExit,omitempty"`
	// Memory use and limit in bytes, and the CPU time its current run has
	// used, when the runtime measures them (the local runtime under runc,
	// from the replica's cgroup).
	MemoryBytes      int64   `json:"memoryBytes,omitempty"`
	MemoryLimitBytes int64   `json:"memoryLimitBytes,omitempty"`
	CPUSeconds       float64 `json:"cpuSeconds,omitempty"`
	// Track is the replica's part in a canary split: TrackStable, or
	// TrackCanary or TrackBaseline while one runs; empty from runtimes
	// that do not say.
	Track string `json:"track,omitempty"`
}

// How a replica is contained.
const (
	IsolationRunc    = "runc"    // an OCI container: own user, namespaces, limits, seccomp
	IsolationProcess = "process" // a plain process of ferry's user
)

// Exit is how one run of a replica ended.
type Exit struct {
	// Reason is one of the Exit… reasons below.
	Reason string `json:"reason"`
	// Code is the exit status (ExitCode); Signal the signal's name
	// (ExitSignal, and SIGKILL for ExitOOM).
	Code   int    `json:"code,omitempty"`
	Signal string `json:"signal,omitempty"`
	// Message says it in words, with the detail of a failed start.
	Message string    `json:"message"`
	Time    time.Time `json:"time,omitzero"`
}

// Exit reasons.
const (
	ExitOOM         = "oom-killed"   // killed by the kernel at its memory limit
	ExitSignal      = "signal"       // killed by a signal
	ExitCode        = "exit-code"    // exited by itself with a status
	ExitStartFailed = "start-failed" // never started
)

// Replica states, as both runtimes report them.
const (
	ReplicaStarting     = "starting"      // not ready yet
	ReplicaRunning      = "running"       // ready
	ReplicaCrashLooping = "crash-looping" // restarting, never ready
	ReplicaStopping     = "stopping"      // draining, terminating
	ReplicaStopped      = "stopped"       // ended
)

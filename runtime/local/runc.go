package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
)

// runc runs one environment's replicas as OCI containers with Debian's
// runc (1.1; crun refuses cgroup layouts that mix v1 and v2). Each run of
// a replica is a container named after the replica, its bundle under
// DataDir/runc/bundles/<id>, runc's state under DataDir/runc/state
// (runc --root), its cgroup ferry/<data dir hash>/<id> below ferry's own
// cgroup in each v1 hierarchy. ferry starts `runc run --keep` in the
// foreground: runc passes the replica its output, forwards the signals it
// gets, and exits with the replica's status (128+n when signal n killed
// it); --keep leaves the stopped container, so that its cgroup can still
// tell an OOM kill, until ferry deletes it.
type runc struct {
	bin     string // the runc binary
	root    string // runc's state directory
	bundles string
	cgroup  string // the cgroup parent, relative to ferry's own cgroup
	uid     int    // the environment's uid and gid
	res     ferry.Resources
	log     *slog.Logger
}

// runcTimeout bounds each runc command but run.
const runcTimeout = 10 * time.Second

// newRunc prepares the runc directories of the environment env under
// dataDir and, with cleanup, removes the containers of env a crashed ferry
// left.
func newRunc(bin, dataDir, env string, uid int, res ferry.Resources, cleanup bool, log *slog.Logger) (*runc, error) {
	sum := sha256.Sum256([]byte(dataDir))
	rc := &runc{
		bin:     bin,
		root:    filepath.Join(dataDir, "runc", "state"),
		bundles: filepath.Join(dataDir, "runc", "bundles"),
		cgroup:  "ferry/" + hex.EncodeToString(sum[:4]),
		uid:     uid,
		res:     res,
		log:     log,
	}
	for _, d := range []string{rc.root, rc.bundles} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if cleanup {
		if err := rc.cleanup(env); err != nil {
			return nil, err
		}
	}
	return rc, nil
}

// cleanup force-deletes the containers of env that runc still knows:
// ferry died without deleting them (a replica that ignored the SIGTERM
// runc forwarded when ferry died may even still run).
func (rc *runc) cleanup(env string) error {
	ctx, cancel := context.WithTimeout(context.Background(), runcTimeout)
	defer cancel()
	out, err := rc.command(ctx, "list", "--quiet").Output()
	if err != nil {
		return fmt.Errorf("runc list: %w", commandError(err))
	}
	for _, id := range strings.Fields(string(out)) {
		if replicaOf(id, env) {
			rc.log.Warn("removing a container a previous ferry left", "container", id)
			if err := rc.delete(id); err != nil {
				return err
			}
		}
	}
	return nil
}

// replicaOf reports whether the container id is a replica of env:
// <env>-<n>.
func replicaOf(id, env string) bool {
	n, ok := strings.CutPrefix(id, env+"-")
	_, err := strconv.Atoi(n)
	return ok && err == nil
}

// command is runc with its state directory and args.
func (rc *runc) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, rc.bin, append([]string{"--root", rc.root}, args...)...)
}

// commandError adds what runc printed to err.
func commandError(err error) error {
	if ee, ok := errors.AsType[*exec.ExitError](err); ok && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}

// container is one run of a replica: what its config.json says.
type container struct {
	ID     string
	Rootfs string // the unpacked image, shared and mounted read-only
	Data   string // the environment's data directory, on /data
	Argv   []string
	Env    []string
}

// runCommand writes the container's bundle and returns the command that
// runs it in the foreground: runc run --keep.
func (rc *runc) runCommand(c container) (*exec.Cmd, error) {
	bundle := filepath.Join(rc.bundles, c.ID)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return nil, err
	}
	raw, err := json.MarshalIndent(rc.spec(c), "", "\t")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(rc.bin, "--root", rc.root, "run", "--keep", "--bundle", bundle, c.ID)
	cmd.SysProcAttr = runcSysProcAttr()
	return cmd, nil
}

// cgroupPath is the container's cgroup below ferry's own.
func (rc *runc) cgroupPath(id string) string { return rc.cgroup + "/" + id }

// spec is the container's config.json: the image's entrypoint as the
// environment's own user, in its own PID, mount, IPC and UTS namespaces
// (the network is the host's: it listens on a loopback port), on the
// read-only image with the environment's data on /data and a private
// /tmp, no capabilities, no new privileges, the seccomp filter and the
// environment's resource limits.
func (rc *runc) spec(c container) ociSpec {
	id := uint32(rc.uid)
	mem := rc.res.Memory
	quota, period := int64(rc.res.MilliCPU)*100, uint64(100000)
	none := []string{}
	s := ociSpec{
		OCIVersion: ociVersion,
		Process: specProcess{
			User: specUser{UID: id, GID: id},
			Args: c.Argv, Env: c.Env, Cwd: dataMount,
			Capabilities:    specCapabilities{Bounding: none, Effective: none, Inheritable: none, Permitted: none, Ambient: none},
			NoNewPrivileges: true,
		},
		Root:     specRoot{Path: c.Rootfs, Readonly: true},
		Hostname: c.ID,
		Mounts: []specMount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=" + tmpSize}},
			{Destination: dataMount, Type: "bind", Source: c.Data, Options: []string{"rbind", "rw", "nosuid", "nodev"}},
		},
		Linux: specLinux{
			Namespaces:  []specNamespace{{Type: "pid"}, {Type: "mount"}, {Type: "ipc"}, {Type: "uts"}},
			CgroupsPath: rc.cgroupPath(c.ID),
			Resources: specResources{
				Devices: []specDevice{{Allow: false, Access: "rwm"}},
				Memory:  &specMemory{Limit: &mem},
				CPU:     &specCPU{Quota: &quota, Period: &period},
				Pids:    &specPids{Limit: int64(rc.res.Pids)},
			},
			Seccomp: seccompProfile(),
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
				"/sys/firmware",
			},
			ReadonlyPaths:     []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
			RootfsPropagation: "private",
		},
	}
	if swapAccounting() {
		// No swapping past the limit either.
		s.Linux.Resources.Memory.Swap = &mem
	}
	for _, f := range mountFiles {
		if _, err := os.Stat(f); err == nil {
			s.Mounts = append(s.Mounts, specMount{Destination: f, Type: "bind", Source: f,
				Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
		}
	}
	return s
}

// tmpSize bounds a contained replica's /tmp, which lives in its memory.
const tmpSize = "128m"

// close removes the data directory's cgroup parent once no container is
// left in it (rmdir refuses while one is). The "ferry" above it stays: a
// ferry of another data directory may be creating its own below.
func (rc *runc) close() {
	for _, d := range cgroupDirs() {
		os.Remove(filepath.Join(d, rc.cgroup))
	}
}

// kill sends sig to the container's processes (all of them with all).
func (rc *runc) kill(id, sig string, all bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), runcTimeout)
	defer cancel()
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	if out, err := rc.command(ctx, append(args, id, sig)...).CombinedOutput(); err != nil {
		return fmt.Errorf("runc kill %s %s: %w: %s", id, sig, err, bytes.TrimSpace(out))
	}
	return nil
}

// delete removes the container, killing what still runs in it.
func (rc *runc) delete(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), runcTimeout)
	defer cancel()
	out, err := rc.command(ctx, "delete", "--force", id).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("does not exist")) {
		return fmt.Errorf("runc delete %s: %w: %s", id, err, bytes.TrimSpace(out))
	}
	os.RemoveAll(filepath.Join(rc.bundles, id))
	return nil
}

// runcState is what `runc state` says of a container.
type runcState struct {
	Status string `json:"status"`
	Pid    int    `json:"pid"`
}

// state asks runc about the container id.
func (rc *runc) state(id string) (runcState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runcTimeout)
	defer cancel()
	var st runcState
	out, err := rc.command(ctx, "state", id).Output()
	if err != nil {
		return st, fmt.Errorf("runc state %s: %w", id, commandError(err))
	}
	return st, json.Unmarshal(out, &st)
}

// envUID is the uid and gid of the environment's replicas: a number in
// [idBase, idBase+idRange) chosen from a hash of its name, so it is the
// same on every machine and every start, and recorded in
// DataDir/runc/ids.json. When two environments of one data directory hash
// alike, the later one takes the next free number, kept from then on.
func envUID(ctx context.Context, dataDir, env string) (int, error) {
	dir := filepath.Join(dataDir, "runc")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	name := filepath.Join(dir, "ids.json")
	unlock, err := lockFile(ctx, name+".lock")
	if err != nil {
		return 0, err
	}
	defer unlock()
	ids := map[string]int{}
	if raw, err := os.ReadFile(name); err == nil {
		if err := json.Unmarshal(raw, &ids); err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	if id, ok := ids[env]; ok {
		return id, nil
	}
	if len(ids) >= idRange {
		return 0, fmt.Errorf("%s: all %d uids from %d are taken", name, idRange, idBase)
	}
	taken := map[int]bool{}
	for _, id := range ids {
		taken[id] = true
	}
	h := fnv.New32a()
	h.Write([]byte(env))
	slot := int(h.Sum32() % idRange)
	for taken[idBase+slot] {
		slot = (slot + 1) % idRange
	}
	ids[env] = idBase + slot
	raw, _ := json.MarshalIndent(ids, "", "  ")
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, name); err != nil {
		return 0, err
	}
	return ids[env], nil
}

// Environments' uids and gids: idRange numbers from idBase, above the
// ranges Debian gives users (up to 59999) and nobody (65534), below
// those container tools map to subordinate ids (from 100000 up).
const (
	idBase  = 70000
	idRange = 1 << 14
)

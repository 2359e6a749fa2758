package local

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Reading a contained replica's cgroup (v1: the memory, cpu, cpuacct and
// pids hierarchies; runc puts the container at the same relative path in
// each, below the cgroup ferry itself is in).

// cgroupDirs maps a v1 controller (and unified, the v2 hierarchy) to the
// directory of ferry's own cgroup in its hierarchy.
var cgroupDirs = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return out
	}
	// hierarchy lines: "4:memory:/process_api/…"; "0::/" is the v2 one,
	// kept under unified (runc makes the container's cgroup there too).
	paths := map[string]string{}
	for line := range strings.Lines(string(own)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			paths[unified] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			paths[c] = parts[2]
		}
	}
	s := bufio.NewScanner(bytes.NewReader(mounts))
	for s.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source super-options
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		f, p := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(p) < 3 {
			continue
		}
		if p[0] == "cgroup2" {
			if own, ok := paths[unified]; ok {
				out[unified] = filepath.Join(f[4], own)
			}
			continue
		}
		if p[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(p[2], ",") {
			if own, ok := paths[opt]; ok {
				out[opt] = filepath.Join(f[4], own)
			}
		}
	}
	return out
})

// unified is cgroupDirs' key of the v2 hierarchy.
const unified = "unified"

// cgroupFile is the path of file in the cgroup rel (relative to ferry's
// own) of controller; empty when that controller is not mounted.
func cgroupFile(controller, rel, file string) string {
	d, ok := cgroupDirs()[controller]
	if !ok {
		return ""
	}
	return filepath.Join(d, rel, file)
}

// readInt reads a cgroup file holding one number.
func readInt(name string) (int64, bool) {
	if name == "" {
		return 0, false
	}
	raw, err := os.ReadFile(name)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	return n, err == nil
}

// usage is what a container's cgroup says it uses.
type usage struct {
	memory, limit int64   // bytes
	cpu           float64 // seconds
}

// cgroupUsage reads the memory use (without the page cache the kernel can
// drop), limit and CPU time of the cgroup rel.
func cgroupUsage(rel string) usage {
	var u usage
	u.memory, _ = readInt(cgroupFile("memory", rel, "memory.usage_in_bytes"))
	if inactive := memoryStat(rel, "total_inactive_file"); inactive <= u.memory {
		u.memory -= inactive
	}
	u.limit, _ = readInt(cgroupFile("memory", rel, "memory.limit_in_bytes"))
	if ns, ok := readInt(cgroupFile("cpuacct", rel, "cpuacct.usage")); ok {
		u.cpu = float64(ns) / 1e9
	}
	return u
}

// memoryStat is one field of the cgroup's memory.stat.
func memoryStat(rel, field string) int64 {
	name := cgroupFile("memory", rel, "memory.stat")
	if name == "" {
		return 0
	}
	raw, err := os.ReadFile(name)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+" "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// oomKills is how many processes the kernel killed in the cgroup rel for
// reaching its memory limit.
func oomKills(rel string) int64 {
	name := cgroupFile("memory", rel, "memory.oom_control")
	if name == "" {
		return 0
	}
	raw, err := os.ReadFile(name)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "oom_kill "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// swapAccounting reports whether the kernel accounts swap per cgroup
// (memory.memsw.*), so that the memory limit can cover swap too.
var swapAccounting = sync.OnceValue(func() bool {
	_, err := os.Stat(cgroupFile("memory", "", "memory.memsw.limit_in_bytes"))
	return err == nil
})

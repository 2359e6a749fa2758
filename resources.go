package ferry

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Resources bound what each replica of an environment may use. The local
// runtime enforces them with cgroups when it contains replicas (as root,
// under runc); zero fields take the defaults below.
type Resources struct {
	// Memory is the replica's memory limit in bytes, page cache and /tmp
	// included; a replica that needs more is OOM-killed and restarted.
	Memory int64
	// MilliCPU is the CPU time it may use, in thousandths of a core per
	// wall-clock second (1000 = one core).
	MilliCPU int
	// Pids is how many processes and threads it may have at once.
	Pids int
}

// Defaults and lower bounds of Resources: below the minimums not even the
// container runtime's own setup fits.
const (
	DefaultMemory   = 512 << 20
	DefaultMilliCPU = 1000
	DefaultPids     = 512
	MinMemory       = 32 << 20
	MinMilliCPU     = 10
	MinPids         = 16
)

// WithDefaults fills the zero fields of r with the defaults.
func (r Resources) WithDefaults() Resources {
	if r.Memory == 0 {
		r.Memory = DefaultMemory
	}
	if r.MilliCPU == 0 {
		r.MilliCPU = DefaultMilliCPU
	}
	if r.Pids == 0 {
		r.Pids = DefaultPids
	}
	return r
}

// String is r as ferry.yaml writes it.
func (r Resources) String() string {
	return fmt.Sprintf("memory %s, cpu %s, pids %d", FormatMemory(r.Memory), FormatMilliCPU(r.MilliCPU), r.Pids)
}

// memoryUnits are the suffixes ParseMemory takes, as Kubernetes does:
// binary (Ki, Mi, Gi) and decimal (k, M, G).
var memoryUnits = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

// ParseMemory reads an amount of memory: a whole number of bytes, or a
// number with a unit (256Mi, 1Gi, 1.5G). It must be at least MinMemory.
func ParseMemory(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range memoryUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || strings.ContainsAny(num, "eExXpP_+-") || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("invalid memory %q (want bytes or a number with a unit: 256Mi, 1Gi, 500M)", s)
	}
	b := f * float64(mult)
	if b > math.MaxInt64/2 {
		return 0, fmt.Errorf("memory %q is too large", s)
	}
	if int64(b) < MinMemory {
		return 0, fmt.Errorf("memory %q is below the minimum of %s", s, FormatMemory(MinMemory))
	}
	return int64(b), nil
}

// FormatMemory writes bytes with the largest binary unit that divides it.
func FormatMemory(b int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if b >= u.m && b%u.m == 0 {
			return strconv.FormatInt(b/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(b, 10)
}

// ParseMilliCPU reads a CPU amount in cores (0.5, 2) or millicores (500m),
// at least MinMilliCPU millicores.
func ParseMilliCPU(s string) (int, error) {
	bad := fmt.Errorf("invalid cpu %q (want cores, like 0.5 or 2, or millicores, like 500m)", s)
	var m float64
	if n, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseUint(n, 10, 31)
		if err != nil {
			return 0, bad
		}
		m = float64(v)
	} else {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || strings.ContainsAny(s, "eExXpP_+-") || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, bad
		}
		m = v * 1000
	}
	if m > 1<<20 {
		return 0, fmt.Errorf("cpu %q is too large", s)
	}
	if m < MinMilliCPU {
		return 0, fmt.Errorf("cpu %q is below the minimum of %s", s, FormatMilliCPU(MinMilliCPU))
	}
	return int(m), nil
}

// FormatMilliCPU writes millicores as cores when whole, else with "m".
func FormatMilliCPU(m int) string {
	if m%1000 == 0 {
		return strconv.Itoa(m / 1000)
	}
	return strconv.Itoa(m) + "m"
}

package local

// The parts of the OCI runtime specification's config.json
// (github.com/opencontainers/runtime-spec, version 1.0.2, which Debian's
// runc 1.1 implements) that ferry writes.

const ociVersion = "1.0.2"

type ociSpec struct {
	OCIVersion string      `json:"ociVersion"`
	Process    specProcess `json:"process"`
	Root       specRoot    `json:"root"`
	Hostname   string      `json:"hostname,omitempty"`
	Mounts     []specMount `json:"mounts"`
	Linux      specLinux   `json:"linux"`
}

type specProcess struct {
	User            specUser         `json:"user"`
	Args            []string         `json:"args"`
	Env             []string         `json:"env"`
	Cwd             string           `json:"cwd"`
	Capabilities    specCapabilities `json:"capabilities"`
	NoNewPrivileges bool             `json:"noNewPrivileges"`
	// OOMScoreAdj stays unset: lowering it needs CAP_SYS_RESOURCE, which
	// root lacks on some machines (runc then fails with "can't get final
	// child's PID from pipe").
}

type specUser struct {
	UID            uint32   `json:"uid"`
	GID            uint32   `json:"gid"`
	AdditionalGids []uint32 `json:"additionalGids,omitempty"`
}

// specCapabilities lists every set, each empty: a replica has none.
type specCapabilities struct {
	Bounding    []string `json:"bounding"`
	Effective   []string `json:"effective"`
	Inheritable []string `json:"inheritable"`
	Permitted   []string `json:"permitted"`
	Ambient     []string `json:"ambient"`
}

type specRoot struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly"`
}

type specMount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type,omitempty"`
	Source      string   `json:"source,omitempty"`
	Options     []string `json:"options,omitempty"`
}

type specLinux struct {
	Namespaces        []specNamespace `json:"namespaces"`
	CgroupsPath       string          `json:"cgroupsPath"`
	Resources         specResources   `json:"resources"`
	Seccomp           *specSeccomp    `json:"seccomp,omitempty"`
	MaskedPaths       []string        `json:"maskedPaths"`
	ReadonlyPaths     []string        `json:"readonlyPaths"`
	RootfsPropagation string          `json:"rootfsPropagation,omitempty"`
}

type specNamespace struct {
	Type string `json:"type"`
}

type specResources struct {
	Devices []specDevice `json:"devices"`
	Memory  *specMemory  `json:"memory,omitempty"`
	CPU     *specCPU     `json:"cpu,omitempty"`
	Pids    *specPids    `json:"pids,omitempty"`
}

type specDevice struct {
	Allow  bool   `json:"allow"`
	Access string `json:"access"`
}

type specMemory struct {
	Limit *int64 `json:"limit,omitempty"`
	Swap  *int64 `json:"swap,omitempty"`
}

type specCPU struct {
	Quota  *int64  `json:"quota,omitempty"`
	Period *uint64 `json:"period,omitempty"`
}

type specPids struct {
	Limit int64 `json:"limit"`
}

type specSeccomp struct {
	DefaultAction   string        `json:"defaultAction"`
	DefaultErrnoRet *uint         `json:"defaultErrnoRet,omitempty"`
	Architectures   []string      `json:"architectures"`
	Syscalls        []specSyscall `json:"syscalls"`
}

type specSyscall struct {
	Names    []string         `json:"names"`
	Action   string           `json:"action"`
	ErrnoRet *uint            `json:"errnoRet,omitempty"`
	Args     []specSeccompArg `json:"args,omitempty"`
}

type specSeccompArg struct {
	Index    uint   `json:"index"`
	Value    uint64 `json:"value"`
	ValueTwo uint64 `json:"valueTwo"`
	Op       string `json:"op"`
}

package local

import "runtime"

// The seccomp filter every contained replica runs under: what the
// container world's default profiles (moby's, containerd's) allow an
// unprivileged container, written down here as ferry's own list. Any
// other system call fails with EPERM. Left out on purpose: kernel module,
// keyring, mount and namespace calls (unshare, setns, mount, umount2,
// pivot_root), bpf, perf_event_open, kexec, reboot, swapon/off, acct,
// quotactl, clock/time setting, open_by_handle_at, userfaultfd, ptrace,
// process_vm_readv/writev, kcmp, personality changes other than the
// harmless ones, and clone with namespace flags. clone3 answers ENOSYS so
// that C libraries fall back to clone, whose flags the filter can see.

// seccompAllowed are the system calls allowed without conditions.
var seccompAllowed = []string{
	// files and descriptors
	"access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range",
	"creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
	"fallocate", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
	"fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fremovexattr", "fsetxattr",
	"fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
	"ftruncate64", "getcwd", "getdents", "getdents64", "getxattr", "inotify_add_watch",
	"inotify_init", "inotify_init1", "inotify_rm_watch", "lchown", "lchown32", "lgetxattr",
	"link", "linkat", "listxattr", "llistxattr", "lremovexattr", "lseek", "lsetxattr",
	"lstat", "lstat64", "mkdir", "mkdirat", "mknod", "mknodat", "newfstatat", "_llseek",
	"open", "openat", "openat2", "pipe", "pipe2", "pread64", "preadv", "preadv2", "pwrite64",
	"pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
	"removexattr", "rename", "renameat", "renameat2", "rmdir", "sendfile", "sendfile64",
	"setxattr", "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink",
	"symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate", "truncate64",
	"umask", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes",
	"vmsplice", "write", "writev", "memfd_create", "fanotify_mark",
	// polling and events
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
	"epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "poll", "ppoll",
	"ppoll_time64", "pselect6", "pselect6_time64", "select", "_newselect", "signalfd",
	"signalfd4", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
	"timerfd_settime", "timerfd_settime64", "io_cancel", "io_destroy", "io_getevents",
	"io_pgetevents", "io_pgetevents_time64", "io_setup", "io_submit", "io_uring_enter",
	"io_uring_register", "io_uring_setup",
	// memory
	"brk", "madvise", "membarrier", "mincore", "mlock", "mlock2", "mlockall", "mmap",
	"mmap2", "mprotect", "mremap", "msync", "munlock", "munlockall", "munmap",
	"get_mempolicy", "set_mempolicy", "mbind", "remap_file_pages", "pkey_alloc",
	"pkey_free", "pkey_mprotect",
	// processes, threads, signals
	"arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork",
	"vfork", "futex", "futex_time64", "futex_waitv", "get_robust_list", "set_robust_list",
	"get_thread_area", "set_thread_area", "set_tid_address", "getegid", "getegid32",
	"geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getpgid",
	"getpgrp", "getpid", "getppid", "getpriority", "getresgid", "getresgid32", "getresuid",
	"getresuid32", "getrlimit", "getrusage", "getsid", "gettid", "getuid", "getuid32",
	"ioprio_get", "ioprio_set", "kill", "tgkill", "tkill", "pause", "pidfd_open",
	"pidfd_send_signal", "pidfd_getfd", "prctl", "prlimit64", "rseq", "rt_sigaction",
	"rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
	"rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
	"sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
	"sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
	"sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
	"sched_yield", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
	"setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid",
	"setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid",
	"setreuid32", "setrlimit", "setsid", "setuid", "setuid32", "sigaltstack", "signal",
	"sigaction", "sigpending", "sigprocmask", "sigreturn", "sigsuspend", "wait4", "waitid",
	"waitpid", "getitimer", "alarm", "restart_syscall", "seccomp",
	// time
	"clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
	"clock_nanosleep", "clock_nanosleep_time64", "gettimeofday", "nanosleep", "time",
	"timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
	"timer_gettime64", "timer_settime", "timer_settime64", "times",
	// networking
	"accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
	"listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send",
	"sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socket", "socketcall",
	"socketpair",
	// System V and POSIX IPC, private to the replica's IPC namespace
	"ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
	"mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl",
	"msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop",
	"semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget",
	// system information
	"getcpu", "getrandom", "sysinfo", "uname", "ioctl", "ugetrlimit",
}

// Linux's clone flags that create namespaces, which a replica may not use
// (CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|
// CLONE_NEWPID|CLONE_NEWNET).
const cloneNamespaceFlags = 0x7E020000

// seccompArchitectures is the native architecture only: a system call made
// through another ABI (a 32-bit one on x86-64) matches no rule of the
// filter and meets libseccomp's bad-architecture action. Listing the
// 32-bit ABIs too, as moby does, costs ~8 ms more CPU at each start
// (BenchmarkRuncRun: libseccomp compiles every rule for each).
func seccompArchitectures() []string {
	switch runtime.GOARCH {
	case "arm64":
		return []string{"SCMP_ARCH_AARCH64"}
	default:
		return []string{"SCMP_ARCH_X86_64"}
	}
}

// seccompProfile is the OCI seccomp section of a replica's config.json.
func seccompProfile() *specSeccomp {
	eperm, enosys := uint(1), uint(38)
	return &specSeccomp{
		DefaultAction:   "SCMP_ACT_ERRNO",
		DefaultErrnoRet: &eperm,
		Architectures:   seccompArchitectures(),
		Syscalls: []specSyscall{
			{Names: seccompAllowed, Action: "SCMP_ACT_ALLOW"},
			// clone only without namespace flags.
			{Names: []string{"clone"}, Action: "SCMP_ACT_ALLOW", Args: []specSeccompArg{
				{Index: 0, Value: cloneNamespaceFlags, ValueTwo: 0, Op: "SCMP_CMP_MASKED_EQ"},
			}},
			// clone3 hides its flags in memory: make callers fall back.
			{Names: []string{"clone3"}, Action: "SCMP_ACT_ERRNO", ErrnoRet: &enosys},
			// personality: only the default and the Linux-32 ones.
			{Names: []string{"personality"}, Action: "SCMP_ACT_ALLOW", Args: []specSeccompArg{{Index: 0, Value: 0x0, Op: "SCMP_CMP_EQ"}}},
			{Names: []string{"personality"}, Action: "SCMP_ACT_ALLOW", Args: []specSeccompArg{{Index: 0, Value: 0x0008, Op: "SCMP_CMP_EQ"}}},
			{Names: []string{"personality"}, Action: "SCMP_ACT_ALLOW", Args: []specSeccompArg{{Index: 0, Value: 0xffffffff, Op: "SCMP_CMP_EQ"}}},
		},
	}
}

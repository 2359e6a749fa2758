// Package cputime reads how much CPU time processes have used, for the
// benchmarks' CPU-per-request figures.
package cputime

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Self is the user and system CPU time this process used so far (0 if
// getrusage fails).
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Of is the user and system CPU time process pid used so far, from
// /proc/PID/stat, in 10 ms clock ticks; 0 where there is no such process
// (one on another machine, say).
func Of(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if pid <= 0 || err != nil {
		return 0
	}
	return parseStat(string(b))
}

// parseStat reads utime and stime from a /proc/PID/stat line. They are
// fields 14 and 15, counted from the pid; the command name (field 2) may
// hold spaces and parentheses, so fields are counted from its last ")".
func parseStat(stat string) time.Duration {
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

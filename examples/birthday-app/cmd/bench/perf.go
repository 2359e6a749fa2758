package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// perfRecording is `perf record` attached to a running process.
type perfRecording struct {
	cmd  *exec.Cmd
	file string
}

// startPerf samples pid's CPU (the cpu-clock event, which works without
// hardware counters, kernel and user stacks) into file until stop.
func startPerf(pid int, file string) (*perfRecording, error) {
	cmd := exec.Command("perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-g", "-p", strconv.Itoa(pid), "-o", file)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	return &perfRecording{cmd: cmd, file: file}, nil
}

// stop ends the recording and returns the profile's top entries: the
// 20 symbols with the most samples of their own (no children).
func (p *perfRecording) stop() (string, error) {
	p.cmd.Process.Signal(syscall.SIGINT)
	p.cmd.Wait() // perf exits non-zero after SIGINT; the file is complete
	out, err := exec.Command("perf", "report", "-i", p.file, "--stdio", "--no-children", "-g", "none",
		"--sort", "dso,symbol", "--fields", "overhead,dso,sym", "--percent-limit", "0.5").Output()
	if err != nil {
		return "", fmt.Errorf("perf report %s: %w", p.file, err)
	}
	type entry struct {
		pct  float64
		line string
	}
	var top []entry
	for line := range strings.Lines(string(out)) {
		t := strings.TrimSpace(line)
		pct, _, ok := strings.Cut(t, "%")
		if !ok || strings.HasPrefix(t, "#") {
			continue
		}
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil {
			continue
		}
		top = append(top, entry{f, strings.TrimSuffix(strings.Join(strings.Fields(t), " "), " - -")})
	}
	slices.SortStableFunc(top, func(a, b entry) int { return cmp.Compare(b.pct, a.pct) })
	var b strings.Builder
	for _, e := range top[:min(len(top), 20)] {
		b.WriteString("  " + e.line + "\n")
	}
	return b.String(), nil
}

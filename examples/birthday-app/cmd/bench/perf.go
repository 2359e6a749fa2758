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
	parts, err := p.components()
	if err != nil {
		return "", err
	}
	b.WriteString("where the time goes (samples with the frame on the stack; the parts overlap):\n" + parts)
	return b.String(), nil
}

// components are frames whose share of the samples, children included,
// says what a request's CPU goes to.
var components = []struct{ frame, what string }{
	{"net/http.(*conn).serve", "net/http's connection loop, everything a request does"},
	{"entry_SYSCALL_64_after_hwframe", "system calls (reads and writes on the client's and PostgreSQL's sockets, futex, epoll)"},
	{"github.com/ferryhq/ferry/examples/birthday-app/store/postgres.(*Store).User", "the store's lookup: its turn for a query, and the query"},
	{"github.com/jackc/pgx/v5/pgxpool.(*Pool).QueryRow", "pgx: GET's query, its write and read included (before coalescing)"},
	{"github.com/jackc/pgx/v5/pgxpool.(*Pool).Query", "pgx: GET's query of the names coalesced, its write and read included"},
	{"github.com/jackc/pgx/v5/pgxpool.(*Pool).Exec", "pgx: PUT's upsert, its write and read included"},
	{"net/http.(*conn).readRequest", "net/http: reading and parsing the request"},
	{"net/http.(*response).finishRequest", "net/http: writing the response"},
	{"github.com/ferryhq/ferry/examples/birthday-app/server.(*Server).accessLog", "the access log line"},
	{"log/slog.(*JSONHandler).Handle", "slog's JSON encoding and write of log lines"},
	{"github.com/ferryhq/ferry/examples/birthday-app/server.(*metrics).observe", "the request metrics"},
	{"github.com/ferryhq/ferry/examples/birthday-app/server.decodeDateOfBirth", "PUT's strict body decoding"},
	{"encoding/json.Marshal", "JSON responses"},
	{"runtime.schedule", "the Go scheduler finding the next goroutine"},
	{"runtime.futex.abi0", "the Go runtime putting threads to sleep and waking them (futex)"},
	{"runtime.mallocgc", "allocation"},
	{"runtime.gcBgMarkWorker", "the garbage collector's marking"},
}

func (p *perfRecording) components() (string, error) {
	out, err := exec.Command("perf", "report", "-i", p.file, "--stdio", "--children", "-g", "none", "--sort", "symbol").Output()
	if err != nil {
		return "", fmt.Errorf("perf report --children %s: %w", p.file, err)
	}
	share := map[string]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasSuffix(f[0], "%") {
			share[f[3]] = f[0]
		}
	}
	var b strings.Builder
	for _, c := range components {
		if s, ok := share[c.frame]; ok {
			fmt.Fprintf(&b, "  %7s  %s (%s)\n", s, c.what, c.frame)
		}
	}
	return b.String(), nil
}

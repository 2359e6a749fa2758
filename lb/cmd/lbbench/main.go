// Command lbbench measures the throughput of ferry's load balancer (package
// lb) against one replica served directly and against nginx proxying the same
// replicas, all in one run, in several rounds in rotating order, and prints a
// markdown table.
//
//	go run ./lb/cmd/lbbench -rounds 5 -duration 5s -conns 64
//
// Every part runs as its own process on loopback: two replicas (a trivial Go
// HTTP server), the ferry balancer (also once more with GOMAXPROCS=1), and
// nginx with upstream keepalive 64, and kamal-proxy when -kamal-proxy names
// its binary or its source directory (built there with go build). wrk
// generates the load. A missing wrk or nginx is an error, never a silently
// dropped column; without -kamal-proxy its row is left out with a printed note.
// -before names another lbbench binary, built from an earlier commit, whose
// balancer is measured in the same run (before and after side by side):
//
//	git worktree add /tmp/before main && (cd /tmp/before && go build -o /tmp/lbbench-before ./lb/cmd/lbbench)
//	go run ./lb/cmd/lbbench -before /tmp/lbbench-before -kamal-proxy DIR
//
// Prerequisites: wrk and nginx (Debian: apt-get install -y wrk nginx-light).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferryhq/ferry/lb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lbbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		role     = fs.String("role", "", "internal: replica or balancer")
		listen   = fs.String("listen", "127.0.0.1:0", "internal: listen address")
		backends = fs.String("backends", "", "internal: comma-separated replica addresses")
		rounds   = fs.Int("rounds", 5, "rounds; each runs every target once, in rotating order")
		duration = fs.Duration("duration", 5*time.Second, "wrk duration per target and round")
		conns    = fs.String("conns", "64", "comma-separated client connection counts")
		threads  = fs.Int("threads", 2, "wrk threads")
		wrkPath  = fs.String("wrk", "wrk", "wrk binary")
		nginx    = fs.String("nginx", "nginx", "nginx binary")
		pprofAt  = fs.String("pprof", "", "internal: with -role balancer, serve net/http/pprof on this address")
		kamal    = fs.String("kamal-proxy", "", "kamal-proxy binary, or its source directory to build; empty leaves it out")
		before   = fs.String("before", "", "another lbbench binary (built from an earlier commit) whose balancer is measured too, as \"ferry lb, before\"")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch *role {
	case "replica":
		return serveReplica(ctx, *listen, stdout)
	case "balancer":
		if *pprofAt != "" {
			go http.ListenAndServe(*pprofAt, nil) // the default mux, which net/http/pprof registers on
		}
		return serveBalancer(ctx, *listen, strings.Split(*backends, ","), stdout, stderr)
	case "":
	default:
		return fmt.Errorf("unknown role %q", *role)
	}

	var counts []int
	for f := range strings.SplitSeq(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-conns: %q is not a positive number", f)
		}
		counts = append(counts, n)
	}
	if *rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}
	wrkBin, err := exec.LookPath(*wrkPath)
	if err != nil {
		return fmt.Errorf("wrk is required: %w", err)
	}
	nginxBin, err := exec.LookPath(*nginx)
	if err != nil {
		return fmt.Errorf("nginx is required (apt-get install -y nginx): %w", err)
	}
	kamalBin := ""
	if *kamal != "" {
		if kamalBin, err = kamalBinary(ctx, *kamal, stderr); err != nil {
			return err
		}
	}
	if *before != "" {
		if _, err := os.Stat(*before); err != nil {
			return fmt.Errorf("-before: %w", err)
		}
	}
	b := bench{wrk: wrkBin, threads: *threads, duration: *duration, stderr: stderr}
	return b.run(ctx, nginxBin, kamalBin, *before, *rounds, counts, stdout)
}

// serveReplica is the app replica: "hello" on every path, 200 on /statusz.
func serveReplica(ctx context.Context, listen string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	hello := []byte("hello from a replica\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain"}
		w.Write(hello)
	})}
	fmt.Fprintln(stdout, "listening", ln.Addr())
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveBalancer runs ferry's balancer over the given replicas.
func serveBalancer(ctx context.Context, listen string, backends []string, stdout, stderr io.Writer) error {
	b, err := lb.New(lb.Config{
		Listen:    listen,
		Readiness: "/statusz",
		Logger:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		return err
	}
	defer b.Close()
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i, addr := range backends {
		id := fmt.Sprintf("r%d", i+1)
		b.Add(id, addr)
		if err := b.WaitReady(wait, id); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, "listening", b.Addr())
	<-ctx.Done()
	return nil
}

type bench struct {
	wrk      string
	threads  int
	duration time.Duration
	stderr   io.Writer
}

// target is one thing wrk measures, with the processes whose CPU time
// counts as its cost.
type target struct {
	name string
	url  string
	pids func() []int
}

func (b bench) run(ctx context.Context, nginxBin, kamalBin, beforeBin string, rounds int, counts []int, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r1, err := startChild(ctx, self, nil, "-role", "replica")
	if err != nil {
		return err
	}
	r2, err := startChild(ctx, self, nil, "-role", "replica")
	if err != nil {
		return err
	}
	replicas := r1.addr + "," + r2.addr
	ferry, err := startChild(ctx, self, nil, "-role", "balancer", "-backends", replicas)
	if err != nil {
		return err
	}
	ferry1, err := startChild(ctx, self, []string{"GOMAXPROCS=1"}, "-role", "balancer", "-backends", replicas)
	if err != nil {
		return err
	}
	ngx, err := startNginx(nginxBin, r1.addr, r2.addr)
	if err != nil {
		return err
	}
	defer ngx.stop()
	version, _ := exec.Command(nginxBin, "-v").CombinedOutput()

	targets := []target{
		{"direct (1 replica)", "http://" + r1.addr + "/", r1.pids},
		{"ferry lb (2 replicas)", "http://" + ferry.addr + "/", ferry.pids},
		{"ferry lb, GOMAXPROCS=1", "http://" + ferry1.addr + "/", ferry1.pids},
		{nginxTarget, "http://" + ngx.addr + "/", ngx.pids},
	}
	beforeNote := ""
	if beforeBin != "" {
		old, err := startChild(ctx, beforeBin, nil, "-role", "balancer", "-backends", replicas)
		if err != nil {
			return err
		}
		targets = append(targets, target{"ferry lb, before (2 replicas)", "http://" + old.addr + "/", old.pids})
		beforeNote = "; before: " + beforeBin
	}
	kamalNote := "kamal-proxy: left out (no -kamal-proxy given)"
	if kamalBin != "" {
		kp, err := startKamal(ctx, kamalBin, r1.addr, r2.addr, b.stderr)
		if err != nil {
			return err
		}
		defer kp.stop()
		targets = append(targets, target{"kamal-proxy (2 replicas)", "http://" + kp.addr + "/", kp.pids})
		kamalNote = "kamal-proxy: " + kamalBin
	}
	load0 := loadavg()
	fmt.Fprintf(stdout, "lbbench: %d rounds x %v per target, wrk -t%d, %s, %s; %s%s; loadavg at start %s\n\n",
		rounds, b.duration, b.threads, strings.TrimSpace(string(version)), runtime.Version(), kamalNote, beforeNote, load0)

	for _, c := range counts {
		// Warm up every target once (connections, JIT-free but caches and GC pacing).
		for _, t := range targets {
			if _, err := b.measure(ctx, t, c, time.Second); err != nil {
				return err
			}
		}
		results := make([][]result, len(targets))
		for r := range rounds {
			for i := range targets {
				k := (i + r) % len(targets)
				res, err := b.measure(ctx, targets[k], c, b.duration)
				if err != nil {
					return err
				}
				fmt.Fprintf(b.stderr, "round %d %-34s %8.0f req/s p50 %v p99 %v\n", r+1, targets[k].name, res.rps, res.p50, res.p99)
				results[k] = append(results[k], res)
			}
		}
		printTable(stdout, c, targets, results)
	}
	fmt.Fprintf(stdout, "\nloadavg at start %s, at end %s\n", load0, loadavg())
	return nil
}

const nginxTarget = "nginx (2 replicas, keepalive 64)"

type result struct {
	rps       float64
	p50, p99  time.Duration
	errors    int
	cpuPerReq time.Duration // CPU time of the target's processes per request
}

var (
	reRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reReqs   = regexp.MustCompile(`(\d+) requests in`)
	reP50    = regexp.MustCompile(`\n\s+50%\s+([0-9.]+)(us|ms|s)`)
	reP99    = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)`)
	reNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSocket = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func (b bench) measure(ctx context.Context, t target, conns int, d time.Duration) (result, error) {
	pids := t.pids()
	cpu0 := cpuTime(pids)
	out, err := exec.CommandContext(ctx, b.wrk, fmt.Sprintf("-t%d", b.threads), fmt.Sprintf("-c%d", conns),
		fmt.Sprintf("-d%v", d), "--latency", t.url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk %s: %w\n%s", t.name, err, out)
	}
	cpu := cpuTime(pids) - cpu0
	s := string(out)
	var res result
	m := reRPS.FindStringSubmatch(s)
	if m == nil {
		return result{}, fmt.Errorf("wrk %s: no Requests/sec in output:\n%s", t.name, s)
	}
	res.rps, _ = strconv.ParseFloat(m[1], 64)
	if res.p50, err = latency(reP50, s); err != nil {
		return result{}, fmt.Errorf("wrk %s: %w", t.name, err)
	}
	if res.p99, err = latency(reP99, s); err != nil {
		return result{}, fmt.Errorf("wrk %s: %w", t.name, err)
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		res.errors += n
	}
	if m := reSocket.FindStringSubmatch(s); m != nil {
		for _, f := range m[1:] {
			n, _ := strconv.Atoi(f)
			res.errors += n
		}
	}
	if m := reReqs.FindStringSubmatch(s); m != nil {
		if n, _ := strconv.Atoi(m[1]); n > 0 {
			res.cpuPerReq = cpu / time.Duration(n)
		}
	}
	return res, nil
}

func latency(re *regexp.Regexp, s string) (time.Duration, error) {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("no latency percentile %s in wrk output", re)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9}[m[2]]
	return time.Duration(v * unit), nil
}

func printTable(w io.Writer, conns int, targets []target, results [][]result) {
	rounds := len(results[0])
	ngx := slices.IndexFunc(targets, func(t target) bool { return t.name == nginxTarget })
	fmt.Fprintf(w, "%d client connections, %d rounds; medians, ratios are medians of the per-round ratios:\n\n", conns, rounds)
	fmt.Fprintln(w, "| target | req/s | p50 | p99 | server CPU/req | errors | req/s range | vs direct | vs nginx | CPU/req vs nginx |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, t := range targets {
		rs := results[i]
		errs := 0
		lo, hi := rs[0].rps, rs[0].rps
		vsDirect := make([]float64, rounds)
		vsNginx := make([]float64, rounds)
		cpuVsNginx := make([]float64, rounds)
		for r, res := range rs {
			errs += res.errors
			lo, hi = min(lo, res.rps), max(hi, res.rps)
			vsDirect[r] = res.rps / results[0][r].rps
			vsNginx[r] = res.rps / results[ngx][r].rps
			cpuVsNginx[r] = float64(res.cpuPerReq) / float64(results[ngx][r].cpuPerReq)
		}
		fmt.Fprintf(w, "| %s | %.0f | %v | %v | %.1f µs | %d | %.0f–%.0f | %.2f | %.2f | %.2f |\n",
			t.name,
			median(rs, func(r result) float64 { return r.rps }),
			time.Duration(median(rs, func(r result) float64 { return float64(r.p50) })).Round(time.Microsecond),
			time.Duration(median(rs, func(r result) float64 { return float64(r.p99) })).Round(time.Microsecond),
			median(rs, func(r result) float64 { return float64(r.cpuPerReq) })/1e3,
			errs, lo, hi,
			median(vsDirect, func(v float64) float64 { return v }),
			median(vsNginx, func(v float64) float64 { return v }),
			median(cpuVsNginx, func(v float64) float64 { return v }))
	}
	fmt.Fprintln(w)
}

func median[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// child is a process started by the benchmark that prints "listening ADDR".
type child struct {
	addr string
	pid  int
}

func (c child) pids() []int { return []int{c.pid} }

func startChild(ctx context.Context, self string, env []string, args ...string) (child, error) {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return child{}, err
	}
	if err := cmd.Start(); err != nil {
		return child{}, fmt.Errorf("start %v: %w", args, err)
	}
	go cmd.Wait()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return child{}, fmt.Errorf("%v: no address: %w", args, err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		return child{}, fmt.Errorf("%v: unexpected first line %q", args, line)
	}
	return child{addr: addr, pid: cmd.Process.Pid}, nil
}

type nginxProc struct {
	addr   string
	pid    int
	dir    string
	quit   func() error
	exited chan error
}

// stop shuts nginx down gracefully, waits for its workers, and removes its
// directory. Killing only the master would leave the workers serving.
func (n nginxProc) stop() {
	_ = n.quit()
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		fmt.Fprintln(os.Stderr, "lbbench: nginx did not exit within 10s")
	}
	os.RemoveAll(n.dir)
}

// pids returns the nginx master and its workers.
func (n nginxProc) pids() []int {
	pids := []int{n.pid}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if stat, err := procStat(pid); err == nil && len(stat) > 1 && stat[1] == strconv.Itoa(n.pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func startNginx(bin, a, b string) (nginxProc, error) {
	dir, err := os.MkdirTemp("", "lbbench-nginx-")
	if err != nil {
		return nginxProc{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nginxProc{}, err
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := fmt.Sprintf(`worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream replicas {
    server %[2]s;
    server %[3]s;
    keepalive 64;
  }
  server {
    listen %[4]s;
    location / {
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`, dir, a, b, addr)
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return nginxProc{}, err
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", file, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// If lbbench dies, the master shuts down gracefully and takes its workers along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nginxProc{}, fmt.Errorf("start nginx: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	n := nginxProc{addr: addr, pid: cmd.Process.Pid, dir: dir, exited: exited,
		quit: func() error { return cmd.Process.Signal(syscall.SIGQUIT) }}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return n, nil
			}
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			os.RemoveAll(dir)
			return nginxProc{}, fmt.Errorf("nginx exited: %v\n%s", err, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.stop()
			return nginxProc{}, fmt.Errorf("nginx on %s not answering 200 after 10s (last error %v)", addr, err)
		}
	}
}

// procStat returns the fields of /proc/PID/stat after the command name.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// cpuTime sums user and system time of pids.
func cpuTime(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		f, err := procStat(pid)
		if err != nil || len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ is 100 on Linux
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

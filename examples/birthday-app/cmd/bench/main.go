// Command bench measures birthday-app against PostgreSQL on this machine
// and compares it with the database's own limit.
//
// It builds birthday-app, creates a fresh database (dropped at the end),
// starts the app on loopback, seeds users, and drives it with a
// closed-loop load generator (-c connections, each kept alive, for -d;
// wrk by default) with GET /hello/{username} and PUT /hello/{username},
// reporting requests per second, p50 and p99 latency, errors and CPU time
// per request. It runs pgbench's
// select-only workload (pgbench -i -s 1 once, then pgbench -S) with the
// same number of clients for the same time in a second fresh database,
// and prints a markdown table with the ratio of the app's GET rate to
// pgbench's TPS.
//
// The machine is shared by the load generator, the app, PostgreSQL and
// whatever else runs, so the app's runs and pgbench's alternate for
// -rounds rounds and the table reports medians. With -perf DIR it
// records the app with perf during the first round's GET and PUT runs and
// prints the top of each profile.
//
// Usage (from examples/birthday-app):
//
//	go run ./cmd/bench -pg 'postgres://user:pass@127.0.0.1:5432/postgres?sslmode=disable'
//
// -pg defaults to $FERRY_TEST_POSTGRES_URL; its role must be able to
// CREATE DATABASE.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferryhq/ferry/examples/birthday-app/internal/cputime"
	"github.com/ferryhq/ferry/examples/birthday-app/internal/testdb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	pg       string
	clients  int
	threads  int
	duration time.Duration
	warmup   time.Duration
	rounds   int
	users    int
	pool     int
	pgbench  string
	appBin   string
	client   string
	appProcs int
	genProcs int
	wrk      string
	perfDir  string
	appEnv   []string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.pg, "pg", os.Getenv("FERRY_TEST_POSTGRES_URL"), "PostgreSQL URL of a role that may CREATE DATABASE (env FERRY_TEST_POSTGRES_URL)")
	fs.IntVar(&o.clients, "c", 8, "concurrent clients, for the app and for pgbench")
	fs.IntVar(&o.threads, "j", runtime.NumCPU(), "pgbench's and wrk's threads")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "duration of each measured run (whole seconds, for pgbench)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before the app's first runs")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds of alternating app and pgbench runs; the table shows medians")
	fs.IntVar(&o.users, "users", 10000, "users seeded before the runs")
	fs.IntVar(&o.pool, "pool", 0, "the app's pgx pool size (pool_max_conns in its URL); 0 keeps the app's default")
	fs.StringVar(&o.pgbench, "pgbench", "pgbench", "pgbench binary")
	fs.StringVar(&o.appBin, "app", "", "a built birthday-app binary (default: build ./cmd/birthday-app)")
	fs.StringVar(&o.client, "client", "wrk", "load generator: wrk, lean (Go: HTTP/1.1 on one kept-alive net.Conn per worker, parsed by net/http.ReadResponse) or nethttp (Go: net/http.Client)")
	fs.StringVar(&o.wrk, "wrk", "wrk", "wrk binary, for -client wrk")
	fs.Func("app-env", "NAME=VALUE added to birthday-app's environment (GOGC=400, say); repeatable", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want NAME=VALUE, got %q", v)
		}
		o.appEnv = append(o.appEnv, v)
		return nil
	})
	fs.StringVar(&o.perfDir, "perf", "", "record the app with perf (cpu-clock, call graphs) during round 1's GET and PUT into this directory, and print each profile's top entries")
	fs.IntVar(&o.appProcs, "app-procs", 0, "GOMAXPROCS of birthday-app, as a container CPU limit would set it; 0 keeps Go's default (all CPUs)")
	fs.IntVar(&o.genProcs, "gen-procs", 1, "GOMAXPROCS of the Go load generators (lean, nethttp); 0 keeps Go's default")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.genProcs > 0 {
		runtime.GOMAXPROCS(o.genProcs)
	}
	switch o.client {
	case "wrk":
		if _, err := exec.LookPath(o.wrk); err != nil {
			return fmt.Errorf("-client wrk needs wrk (Debian: apt-get install wrk), or pass -client lean: %w", err)
		}
	case "lean", "nethttp":
	default:
		return errors.New("-client: want wrk, lean or nethttp")
	}
	if o.perfDir != "" {
		if _, err := exec.LookPath("perf"); err != nil {
			return fmt.Errorf("-perf needs perf (Debian: apt-get install linux-perf): %w", err)
		}
		if err := os.MkdirAll(o.perfDir, 0o755); err != nil {
			return err
		}
	}
	if o.pg == "" {
		return errors.New("no PostgreSQL: set -pg or FERRY_TEST_POSTGRES_URL")
	}
	if o.clients < 1 || o.users < 1 || o.rounds < 1 || o.duration < time.Second {
		return errors.New("-c, -users and -rounds must be positive, -d at least 1s")
	}
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", args...) }

	bin := o.appBin
	if bin == "" {
		dir, err := os.MkdirTemp("", "birthday-bench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "birthday-app")
		logf("building birthday-app")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/birthday-app")
		build.Stderr = stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build birthday-app (run bench from examples/birthday-app): %w", err)
		}
	}

	appDB, dropApp, err := testdb.CreatePostgres(ctx, o.pg, testdb.Name("birthday_bench"))
	if err != nil {
		return err
	}
	defer dropApp()
	if o.pool > 0 {
		u, _ := url.Parse(appDB)
		q := u.Query()
		q.Set("pool_max_conns", strconv.Itoa(o.pool))
		u.RawQuery = q.Encode()
		appDB = u.String()
	}
	pgbenchDB, dropPgbench, err := testdb.CreatePostgres(ctx, o.pg, testdb.Name("birthday_pgbench"))
	if err != nil {
		return err
	}
	defer dropPgbench()
	logf("pgbench -i -s 1")
	if _, err := pgbench(ctx, o, pgbenchDB, "-i", "-s", "1", "-q"); err != nil {
		return err
	}

	env := o.appEnv
	if o.appProcs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(o.appProcs))
	}
	addr, appPID, stopApp, err := startApp(ctx, bin, appDB, env)
	if err != nil {
		return err
	}
	defer stopApp()
	base := "http://" + addr
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        o.clients,
		MaxIdleConnsPerHost: o.clients,
		MaxConnsPerHost:     o.clients,
		DisableCompression:  true,
	}, Timeout: 10 * time.Second}

	logf("seeding %d users", o.users)
	if err := seed(ctx, client, base, o.users, o.clients); err != nil {
		return err
	}
	var lg load
	switch o.client {
	case "wrk":
		dir, err := os.MkdirTemp("", "birthday-bench-wrk")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		lg = wrkLoad{bin: o.wrk, addr: addr, clients: o.clients, threads: o.threads, users: o.users, appPID: appPID, dir: dir}
	case "lean":
		lg = loadGen{clients: o.clients, users: o.users, appPID: appPID, newConn: func() conn { return &leanConn{addr: addr} }}
	default:
		lg = loadGen{clients: o.clients, users: o.users, appPID: appPID, newConn: func() conn { return &netHTTPConn{client: client, base: base} }}
	}
	logf("warm-up: %s of GET and PUT", o.warmup)
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		if _, err := lg.run(ctx, o.warmup/2, m); err != nil {
			return err
		}
	}

	load1, _ := os.ReadFile("/proc/loadavg")
	var gets, puts []result
	var simple, prepared []float64
	var profiles []string
	app := func(r int, m string) (result, error) {
		var rec *perfRecording
		if o.perfDir != "" && r == 0 {
			var err error
			if rec, err = startPerf(appPID, filepath.Join(o.perfDir, strings.ToLower(m)+".perf.data")); err != nil {
				return result{}, err
			}
		}
		res, err := lg.run(ctx, o.duration, m)
		if rec != nil {
			top, perr := rec.stop()
			if perr != nil {
				return result{}, perr
			}
			profiles = append(profiles, fmt.Sprintf("perf profile of birthday-app during %s (%s), own time of the top symbols:\n%s", m, rec.file, top))
		}
		return res, err
	}
	bench := func(mode string) (float64, error) {
		return pgbench(ctx, o, pgbenchDB, "-S", "-M", mode, "-n", "-c", strconv.Itoa(o.clients),
			"-j", strconv.Itoa(o.threads), "-T", strconv.Itoa(int(o.duration.Seconds())))
	}
	for r := range o.rounds {
		// pgbench -S right before the app's GET: the pair gives the round's
		// ratio, measured as close together as the machine allows.
		logf("round %d/%d: pgbench -S, app GET, app PUT, pgbench -S -M prepared; %s each, %d clients", r+1, o.rounds, o.duration, o.clients)
		tps, err := bench("simple")
		if err != nil {
			return err
		}
		simple = append(simple, tps)
		for _, m := range []string{http.MethodGet, http.MethodPut} {
			res, err := app(r, m)
			if err != nil {
				return err
			}
			if m == http.MethodGet {
				gets = append(gets, res)
			} else {
				puts = append(puts, res)
			}
		}
		if tps, err = bench("prepared"); err != nil {
			return err
		}
		prepared = append(prepared, tps)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	load2, _ := os.ReadFile("/proc/loadavg")

	g, p := median(gets), median(puts)
	s, pr := medianOf(simple), medianOf(prepared)
	procs := func(n int) string {
		if n == 0 {
			return "default"
		}
		return strconv.Itoa(n)
	}
	gen := o.client
	if o.client == "wrk" {
		gen = fmt.Sprintf("wrk -t %d", o.threads)
	} else {
		gen += " (GOMAXPROCS " + procs(o.genProcs) + ")"
	}
	fmt.Fprintf(stdout, "%d clients, %s load generator, app GOMAXPROCS %s%s, %s per run, median of %d rounds, %d CPUs; load average before %s, after %s\n\n",
		o.clients, gen, procs(o.appProcs), strings.Join(append([]string{""}, o.appEnv...), " "), o.duration, o.rounds, runtime.NumCPU(), strings.Join(strings.Fields(string(load1))[:3], " "), strings.Join(strings.Fields(string(load2))[:3], " "))
	fmt.Fprintln(stdout, "| workload | requests/s | p50 | p99 | errors | app CPU/req | load generator CPU/req |")
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|---:|---:|")
	fmt.Fprintf(stdout, "| birthday-app `GET /hello/{username}` | %.0f | %s | %s | %d | %.0f µs | %.0f µs |\n",
		g.rate(), ms(g.p50), ms(g.p99), g.errors, g.cpuPerRequest(g.appCPU), g.cpuPerRequest(g.genCPU))
	fmt.Fprintf(stdout, "| birthday-app `PUT /hello/{username}` | %.0f | %s | %s | %d | %.0f µs | %.0f µs |\n",
		p.rate(), ms(p.p50), ms(p.p99), p.errors, p.cpuPerRequest(p.appCPU), p.cpuPerRequest(p.genCPU))
	fmt.Fprintf(stdout, "| `pgbench -S` (simple protocol), TPS | %.0f | | | | | |\n", s)
	fmt.Fprintf(stdout, "| `pgbench -S -M prepared`, TPS | %.0f | | | | | |\n", pr)
	fmt.Fprintf(stdout, "| **GET ÷ pgbench -S** (median of the rounds' ratios) | **%.2f** | | | | | |\n", medianRatio(gets, simple))
	fmt.Fprintf(stdout, "| GET ÷ pgbench -S -M prepared | %.2f | | | | | |\n", g.rate()/pr)
	fmt.Fprintf(stdout, "\nper round, GET/s: %s; PUT/s: %s; pgbench -S TPS: %s; GET ÷ pgbench -S: %s\n",
		rates(gets), rates(puts), floats(simple), ratios(gets, simple))
	for _, p := range profiles {
		fmt.Fprintf(stdout, "\n%s", p)
	}
	return nil
}

// userName maps i to a letters-only name: "user" and i in base 26.
func userName(i int) string {
	b := []byte("user")
	for {
		b = append(b, byte('a'+i%26))
		i /= 26
		if i == 0 {
			return string(b)
		}
	}
}

// startApp runs birthday-app on a free loopback port and waits until it
// is ready. Its JSON logs go to /dev/null: encoding and writing them is
// part of the measured cost.
func startApp(ctx context.Context, bin, dbURL string, env []string) (addr string, pid int, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, nil, err
	}
	addr = ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-listen", addr, "-db", dbURL)
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/statusz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr, cmd.Process.Pid, stop, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", 0, nil, fmt.Errorf("birthday-app on %s did not become ready", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func seed(ctx context.Context, client *http.Client, base string, users, workers int) error {
	next := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				body := fmt.Sprintf(`{"dateOfBirth":"%04d-%02d-%02d"}`, 1950+i%60, 1+i%12, 1+i%28)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/hello/"+userName(i), strings.NewReader(body))
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusNoContent {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					errc <- fmt.Errorf("seed user %d: %w", i, err)
					for range next { // drain
					}
					return
				}
			}
		})
	}
	for i := range users {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	close(errc)
	return <-errc
}

// worker is one closed-loop client with its own random numbers.
type worker struct{ x uint64 }

// rand returns a pseudo-random number in [0, n) (xorshift).
func (w *worker) rand(n int) int {
	w.x ^= w.x << 13
	w.x ^= w.x >> 7
	w.x ^= w.x << 17
	return int(w.x % uint64(n))
}

// load is a load generator: it sends method requests to the app for d.
type load interface {
	run(ctx context.Context, d time.Duration, method string) (result, error)
}

type result struct {
	requests int // successful ones
	elapsed  time.Duration
	p50, p99 time.Duration // latencies
	errors   int
	appCPU   time.Duration // used by birthday-app
	genCPU   time.Duration // used by the load generator
}

func (r result) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// cpuPerRequest is CPU time per successful request, in microseconds.
func (r result) cpuPerRequest(cpu time.Duration) float64 {
	if r.requests == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(r.requests)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// call is one request to make and the status that counts as success.
type call struct {
	method, path, body string
	want               int
}

// conn sends calls on one worker's connection.
type conn interface {
	do(c call) (status int, err error)
}

// netHTTPConn sends through a shared net/http.Client (keep-alive pool).
type netHTTPConn struct {
	client *http.Client
	base   string
}

func (n *netHTTPConn) do(c call) (int, error) {
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, n.base+c.path, body)
	if err != nil {
		return 0, err
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// leanConn writes HTTP/1.1 requests by hand on one kept-alive connection
// and reads the responses with net/http.ReadResponse: a load generator
// that spends little CPU, as pgbench's client does.
type leanConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	buf  []byte
}

func (l *leanConn) do(c call) (int, error) {
	if l.c == nil {
		nc, err := net.Dial("tcp", l.addr)
		if err != nil {
			return 0, err
		}
		l.c, l.r = nc, bufio.NewReader(nc)
	}
	b := append(l.buf[:0], c.method...)
	b = append(b, ' ')
	b = append(b, c.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, l.addr...)
	if c.body != "" {
		b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(c.body)), 10)
	}
	b = append(b, "\r\n\r\n"...)
	b = append(b, c.body...)
	l.buf = b
	if _, err := l.c.Write(b); err != nil {
		l.close()
		return 0, err
	}
	resp, err := http.ReadResponse(l.r, nil)
	if err != nil {
		l.close()
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		l.close()
	}
	return resp.StatusCode, err
}

func (l *leanConn) close() {
	l.c.Close()
	l.c = nil
}

// loadGen runs closed loops in this process: each of clients workers
// sends its next call as soon as its previous one was answered.
type loadGen struct {
	clients int
	users   int
	newConn func() conn
	appPID  int
}

// call returns the worker's next request of method.
func (g loadGen) call(w *worker, method string) call {
	path := "/hello/" + userName(w.rand(g.users))
	if method == http.MethodPut {
		body := fmt.Sprintf(`{"dateOfBirth":"%04d-%02d-%02d"}`, 1950+w.rand(60), 1+w.rand(12), 1+w.rand(28))
		return call{method: http.MethodPut, path: path, body: body, want: http.StatusNoContent}
	}
	return call{method: http.MethodGet, path: path, want: http.StatusOK}
}

func (g loadGen) run(ctx context.Context, d time.Duration, method string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu        sync.Mutex
		all       result
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	app0, gen0 := cputime.Of(g.appPID), cputime.Self()
	start := time.Now()
	for i := range g.clients {
		wg.Go(func() {
			w := &worker{x: uint64(start.UnixNano()) | uint64(i+1)<<40}
			c := g.newConn()
			lat := make([]time.Duration, 0, 1<<16)
			errs := 0
			for ctx.Err() == nil {
				call := g.call(w, method)
				t0 := time.Now()
				status, err := c.do(call)
				if err != nil || status != call.want {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			if l, ok := c.(*leanConn); ok && l.c != nil {
				l.close()
			}
			mu.Lock()
			latencies = append(latencies, lat...)
			all.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	all.appCPU, all.genCPU = cputime.Of(g.appPID)-app0, cputime.Self()-gen0
	slices.Sort(latencies)
	all.requests = len(latencies)
	if n := len(latencies); n > 0 {
		all.p50, all.p99 = latencies[(n-1)*50/100], latencies[(n-1)*99/100]
	}
	return all, nil
}

// median is the result with the median rate.
func median(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int { return int(a.rate() - b.rate()) })
	return s[len(s)/2]
}

func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func rates(rs []result) string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%.0f", r.rate()))
	}
	return strings.Join(out, ", ")
}

// medianRatio is the median over the rounds of each round's app rate
// divided by that round's TPS.
func medianRatio(rs []result, tps []float64) float64 {
	var xs []float64
	for i, r := range rs {
		xs = append(xs, r.rate()/tps[i])
	}
	return medianOf(xs)
}

func ratios(rs []result, tps []float64) string {
	var out []string
	for i, r := range rs {
		out = append(out, fmt.Sprintf("%.2f", r.rate()/tps[i]))
	}
	return strings.Join(out, ", ")
}

func floats(xs []float64) string {
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprintf("%.0f", x))
	}
	return strings.Join(out, ", ")
}

// pgbench runs pgbench with args against dbURL and returns the TPS it
// reports (0 for -i).
func pgbench(ctx context.Context, o options, dbURL string, args ...string) (float64, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return 0, err
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	env := append(os.Environ(), "PGHOST="+u.Hostname(), "PGPORT="+port,
		"PGUSER="+u.User.Username(), "PGDATABASE="+strings.TrimPrefix(u.Path, "/"))
	if p, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+p)
	}
	if s := u.Query().Get("sslmode"); s != "" {
		env = append(env, "PGSSLMODE="+s)
	}
	cmd := exec.CommandContext(ctx, o.pgbench, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	if args[0] == "-i" {
		return 0, nil
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, "tps = "); ok {
			f, _, _ := strings.Cut(v, " ")
			return strconv.ParseFloat(f, 64)
		}
	}
	return 0, fmt.Errorf("pgbench %s: no tps in its output:\n%s", strings.Join(args, " "), out)
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/examples/birthday-app/internal/cputime"
)

// wrkLoad drives the app with wrk (github.com/wg/wrk, Debian's package
// wrk): -threads threads holding -clients kept-alive connections between
// them, as pgbench's -j and -c do. A Lua script picks the requests: 4096
// per thread, formatted once at start, random users and dates, sent in
// turn; its done hook prints one line this program parses.
type wrkLoad struct {
	bin     string
	addr    string
	clients int
	threads int
	users   int
	appPID  int
	dir     string // where the scripts are written
}

func (l wrkLoad) run(ctx context.Context, d time.Duration, method string) (result, error) {
	script := filepath.Join(l.dir, strings.ToLower(method)+".lua")
	if err := os.WriteFile(script, []byte(wrkScript(method, l.users)), 0o644); err != nil {
		return result{}, err
	}
	secs := max(1, int(d.Round(time.Second).Seconds()))
	cmd := exec.CommandContext(ctx, l.bin, "-t", strconv.Itoa(l.threads), "-c", strconv.Itoa(l.clients),
		"-d", strconv.Itoa(secs)+"s", "-s", script, "http://"+l.addr)
	app0 := cputime.Of(l.appPID)
	out, err := cmd.CombinedOutput()
	appCPU := cputime.Of(l.appPID) - app0
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return result{}, err
	}
	r.appCPU = appCPU
	r.genCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, nil
}

// parseWrk reads the line the script's done hook prints:
// "bench-wrk requests=N duration_us=N errors=N p50_us=N p99_us=N".
// Errors are connection errors, timeouts and unexpected statuses
// (anything but 2xx and 3xx); requests counts only the others.
func parseWrk(out string) (result, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "bench-wrk ")
		if !ok {
			continue
		}
		v := map[string]int64{}
		for _, f := range strings.Fields(rest) {
			k, s, _ := strings.Cut(f, "=")
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return result{}, fmt.Errorf("wrk: bad %q in %q", f, sc.Text())
			}
			v[k] = n
		}
		for _, k := range []string{"requests", "duration_us", "errors", "p50_us", "p99_us"} {
			if _, ok := v[k]; !ok {
				return result{}, fmt.Errorf("wrk: no %s in %q", k, sc.Text())
			}
		}
		return result{
			requests: int(v["requests"] - v["errors"]),
			elapsed:  time.Duration(v["duration_us"]) * time.Microsecond,
			errors:   int(v["errors"]),
			p50:      time.Duration(v["p50_us"]) * time.Microsecond,
			p99:      time.Duration(v["p99_us"]) * time.Microsecond,
		}, nil
	}
	return result{}, fmt.Errorf("wrk: no bench-wrk line in its output:\n%s", out)
}

// wrkScript is the Lua script for GET or PUT /hello/{username} over users
// users named as userName names them.
func wrkScript(method string, users int) string {
	return fmt.Sprintf(`-- written by birthday-app's cmd/bench
local users, method = %d, %q
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

local function name(i)
  local s = "user"
  repeat
    s = s .. string.char(97 + i %% 26)
    i = math.floor(i / 26)
  until i == 0
  return s
end

local reqs, next = {}, 0
function init(args)
  math.randomseed(id * 7919 + os.time())
  for k = 1, 4096 do
    local path = "/hello/" .. name(math.random(0, users - 1))
    if method == "PUT" then
      local body = string.format('{"dateOfBirth":"%%04d-%%02d-%%02d"}',
        1950 + math.random(0, 59), math.random(1, 12), math.random(1, 28))
      reqs[k] = wrk.format("PUT", path, {["Content-Type"] = "application/json"}, body)
    else
      reqs[k] = wrk.format("GET", path)
    end
  end
end

function request()
  next = next %% #reqs + 1
  return reqs[next]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("bench-wrk requests=%%d duration_us=%%d errors=%%d p50_us=%%d p99_us=%%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`, users, method)
}

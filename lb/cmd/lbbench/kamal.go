package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// kamalBinary returns the kamal-proxy binary that path names: the binary
// itself, or a source directory (a checkout of basecamp/kamal-proxy) that it
// builds into a temporary directory with go build.
func kamalBinary(ctx context.Context, path string, stderr io.Writer) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("-kamal-proxy: %w", err)
	}
	if !fi.IsDir() {
		return path, nil
	}
	out := filepath.Join(os.TempDir(), "lbbench-kamal-proxy")
	fmt.Fprintf(stderr, "lbbench: building kamal-proxy from %s into %s\n", path, out)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/kamal-proxy")
	cmd.Dir = path
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build kamal-proxy in %s: %w", path, err)
	}
	return out, nil
}

type kamalProc struct {
	addr string
	pid  int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (k kamalProc) pids() []int { return []int{k.pid} }

func (k kamalProc) stop() {
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(10 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.done
	}
	os.RemoveAll(k.dir)
}

// startKamal runs kamal-proxy with its state and control socket in a
// temporary directory and deploys the two replicas behind it. kamal-proxy
// has no flag for its bind address; it listens on every interface of the
// free ports chosen here, and the benchmark sends it loopback traffic only.
func startKamal(ctx context.Context, bin, a, b string, stderr io.Writer) (kamalProc, error) {
	dir, err := os.MkdirTemp("", "lbbench-kamal-")
	if err != nil {
		return kamalProc{}, err
	}
	env := append(os.Environ(), "HOME="+dir, "XDG_RUNTIME_DIR="+dir,
		"KAMAL_PROXY_SOCKET="+filepath.Join(dir, "kamal-proxy.sock"))
	httpPort, err := freePort()
	if err != nil {
		return kamalProc{}, err
	}
	httpsPort, err := freePort()
	if err != nil {
		return kamalProc{}, err
	}
	cmd := exec.Command(bin, "run", "--http-port", fmt.Sprint(httpPort), "--https-port", fmt.Sprint(httpsPort))
	cmd.Env = env
	cmd.Stdout = io.Discard // one JSON line per request
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return kamalProc{}, fmt.Errorf("start kamal-proxy: %w", err)
	}
	k := kamalProc{addr: fmt.Sprintf("127.0.0.1:%d", httpPort), pid: cmd.Process.Pid, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(k.done) }()

	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		deploy := exec.CommandContext(ctx, bin, "deploy", "bench", "--target", a, "--target", b,
			"--health-check-path", "/statusz", "--health-check-interval", "200ms")
		deploy.Env = env
		out, err := deploy.CombinedOutput()
		if err != nil {
			last = fmt.Errorf("kamal-proxy deploy: %w: %s", err, out)
			continue
		}
		res, err := http.Get("http://" + k.addr + "/")
		if err != nil {
			last = err
			continue
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return k, nil
		}
		last = fmt.Errorf("GET / through kamal-proxy: status %d", res.StatusCode)
	}
	k.stop()
	return kamalProc{}, fmt.Errorf("kamal-proxy not serving after 20s: %w", last)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

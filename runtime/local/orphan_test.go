package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ferryhq/ferry/oci"
)

// orphanEnv makes the test binary run orphanMain instead of the tests: a
// ferry stand-in that starts replicas, prints their pids and waits to be
// killed.
const orphanEnv = "LOCAL_TEST_ORPHAN"

type orphanArgs struct {
	Repo, Digest, DataDir string
	NoSandbox             bool
}

func orphanMain() {
	var a orphanArgs
	if err := json.Unmarshal([]byte(os.Getenv(orphanEnv)), &a); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	err := func() error {
		pub, err := oci.NewPublisher(a.Repo, oci.WithKeychain(authn.NewMultiKeychain()))
		if err != nil {
			return err
		}
		tg, err := New(Config{Env: "dev", DataDir: a.DataDir, Listen: "127.0.0.1:0", Readiness: "/statusz",
			PortEnv: "PORT", Images: pub, NoSandbox: a.NoSandbox})
		if err != nil {
			return err
		}
		s := spec(a.Digest, 2)
		if err := tg.Apply(context.Background(), s, nil); err != nil {
			return err
		}
		fmt.Println("pids", strings.Trim(fmt.Sprint(pids(tg)), "[]"))
		return nil
	}()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	time.Sleep(time.Minute)
	os.Exit(0)
}

// TestReplicasDieWithFerry kills a process running replicas with SIGKILL,
// leaving it no chance to stop them: the parent-death signal must.
func TestReplicasDieWithFerry(t *testing.T) {
	im := appImages(t)
	for _, noSandbox := range []bool{false, true} {
		t.Run(fmt.Sprintf("sandbox=%v", !noSandbox && isRoot()), func(t *testing.T) {
			dataDir := t.TempDir()
			ps := runStandIn(t, orphanArgs{
				Repo:   strings.TrimPrefix(registrySrv.URL, "http://") + "/app",
				Digest: im.v1, DataDir: dataDir, NoSandbox: noSandbox,
			})
			waitFor(t, 5*time.Second, "the replicas to die with their parent", func() bool {
				for _, pid := range ps {
					if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
						return false
					}
				}
				return true
			})
			if noSandbox || !isRoot() {
				return
			}
			// runc left the stopped containers (run --keep): the next
			// start removes them, cgroups included.
			tg := newTarget(t, im, func(c *Config) { c.DataDir = dataDir })
			for _, id := range []string{"dev-1", "dev-2"} {
				if _, err := tg.rc.state(id); err == nil {
					t.Errorf("runc still knows %s", id)
				}
				if _, err := os.Stat(cgroupFile("memory", tg.rc.cgroupPath(id), "")); err == nil {
					t.Errorf("the cgroup of %s is still there", id)
				}
			}
		})
	}
}

// runStandIn starts a ferry stand-in with two replicas of a.Digest, kills
// it with SIGKILL once they are ready and returns their pids (runc's when
// contained). Should the test fail, it kills them.
func runStandIn(t *testing.T, a orphanArgs) []int {
	t.Helper()
	args, _ := json.Marshal(a)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), orphanEnv+"="+string(args))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "pids ") {
		t.Fatalf("stand-in said %q (%v), want its replicas' pids", line, err)
	}
	var ps []int
	for _, f := range strings.Fields(strings.TrimPrefix(line, "pids ")) {
		var pid int
		fmt.Sscan(f, &pid)
		ps = append(ps, pid)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, pid := range ps {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if len(ps) != 2 {
		t.Fatalf("pids %v, want 2", ps)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return ps
}

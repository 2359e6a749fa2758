package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// syncBuffer is a bytes.Buffer safe for the demo's writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// load sends GETs to url from a few keep-alive clients until stopped, and
// counts what failed.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstErr   string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(url string, workers int) *load {
	l := &load{stop: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			deadline := time.Now().Add(5 * time.Minute) // bounded even if never stopped
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err == nil {
					_, _ = drain(resp)
					if resp.StatusCode == http.StatusOK {
						l.ok.Add(1)
						continue
					}
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				l.failed.Add(1)
				l.mu.Lock()
				if l.firstErr == "" {
					l.firstErr = err.Error()
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) finish() { close(l.stop); l.wg.Wait() }

func drain(resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	var b [4096]byte
	var n int64
	for {
		m, err := resp.Body.Read(b[:])
		n += int64(m)
		if err != nil {
			return n, nil
		}
	}
}

func versionOf(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/version")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var v struct {
		Commit string `json:"commit"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return v.Commit
}

func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestDemoEndToEnd is the local-runtime issue's end-to-end check: `ferry
// demo` in a temp dir builds master and serves dev; a pushed change is
// serving seconds later while a load generator sees no failed request; a
// commit whose app exits at start and one that never becomes ready are
// reverted, and dev keeps serving the old version throughout.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	d := startDemo(t)
	dir, repo, devURL, apiURL, c := d.dir, d.repo, d.devURL, d.apiURL, d.c
	ctx := t.Context()
	// startDemo found the admin token the demo stored where the CLI looks
	// (TestMain points XDG_CONFIG_HOME into a temp dir).
	if !strings.Contains(d.out.String(), "made the admin token demo-admin and stored it for "+c.Base) {
		t.Errorf("the demo does not say where its token is:\n%s", d.out.String())
	}
	head := gitCmd(t, dir, "--git-dir="+repo, "rev-parse", "master")
	if got := versionOf(t, devURL); got != head {
		t.Fatalf("dev serves %q, want master's head %s\n%s", got, head, d.out.String())
	}

	// The user's loop: clone, change, commit, push; dev follows under load.
	work := filepath.Join(t.TempDir(), "birthday-app")
	gitCmd(t, dir, "clone", "-q", repo, work)
	push := func(file, content, msg string) string {
		if err := os.WriteFile(filepath.Join(work, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		gitCmd(t, work, "add", "-A")
		gitCmd(t, work, "commit", "-q", "-m", msg)
		gitCmd(t, work, "push", "-q", "origin", "master")
		return gitCmd(t, work, "rev-parse", "HEAD")
	}
	l := startLoad(devURL+"/statusz", 4)
	change := push("NOTES.md", "a change\n", "docs: a change")
	waitFor(t, 3*time.Minute, "dev to serve the pushed commit", func() bool { return versionOf(t, devURL) == change })
	l.finish()
	t.Logf("rollout of %s under load: %d requests ok, %d failed", ferry.ShortSHA(change), l.ok.Load(), l.failed.Load())
	if bs, err := c.Builds(ctx, "master", nil, 1); err == nil && len(bs) == 1 && bs[0].Commit == change {
		if b, err := c.Build(ctx, bs[0].ID); err == nil {
			for _, st := range b.Steps {
				t.Logf("build %d step %s: %s in %s", b.ID, st.Name, st.State, st.FinishedAt.Sub(st.StartedAt).Round(time.Millisecond))
			}
		}
	}
	if l.failed.Load() != 0 || l.ok.Load() == 0 {
		t.Errorf("during the rollout: %d ok, %d failed (first: %s), want 0 failed", l.ok.Load(), l.failed.Load(), l.firstErr)
	}

	// What runs where: the status JSON keeps its documented shape, and the
	// registry's latest and git's env/dev follow dev.
	waitFor(t, 30*time.Second, "dev's deployment to finish verifying", func() bool {
		s, err := c.Status(ctx)
		return err == nil && s.Environments[0].Commit == change && s.Environments[0].State == "healthy"
	})
	stdout, stderr, code := run(t, "status", "-o", "json", "--server", apiURL)
	if code != 0 {
		t.Fatalf("ferry status: exit %d: %s", code, stderr)
	}
	var st struct {
		Environments []struct {
			Name, Commit, Digest, Release, State, DeployedAt string
			Replicas                                         struct{ Ready, Desired int }
			Pods                                             []struct {
				ID, State, Isolation          string
				Restarts                      int
				MemoryBytes, MemoryLimitBytes int64
				CPUSeconds                    float64
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, stdout)
	}
	if len(st.Environments) != 2 || st.Environments[0].Name != "dev" || st.Environments[1].Name != "prod" {
		t.Fatalf("status environments = %+v, want dev and prod", st.Environments)
	}
	devSt := st.Environments[0]
	if devSt.Commit != change || !strings.HasPrefix(devSt.Digest, "sha256:") || devSt.Release != "" ||
		devSt.State != "healthy" || devSt.Replicas.Ready != 2 || devSt.Replicas.Desired != 2 {
		t.Errorf("dev status = %+v, want healthy 2/2 on %s", devSt, change)
	}
	// Each replica, as it really runs: contained under runc as root, with
	// its cgroup's figures.
	wantIsolation, measured := ferry.IsolationProcess, false
	if os.Geteuid() == 0 {
		wantIsolation, measured = ferry.IsolationRunc, true
	}
	if len(devSt.Pods) != 2 {
		t.Errorf("dev status pods = %+v, want 2", devSt.Pods)
	}
	for _, p := range devSt.Pods {
		if p.State != ferry.ReplicaRunning || p.Isolation != wantIsolation ||
			measured && (p.MemoryLimitBytes != ferry.DefaultMemory || p.MemoryBytes <= 0 || p.MemoryBytes >= p.MemoryLimitBytes || p.CPUSeconds <= 0) {
			t.Errorf("dev replica %+v, want running as %s (measured: %v) within the default %d bytes", p, wantIsolation, measured, ferry.DefaultMemory)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, devSt.DeployedAt); err != nil {
		t.Errorf("dev status deployedAt = %q, want an RFC 3339 time: %v", devSt.DeployedAt, err)
	}
	if st.Environments[1].State != "empty" || st.Environments[1].DeployedAt != "" {
		t.Errorf("prod status = %+v, want empty before any release, without deployedAt", st.Environments[1])
	}
	waitFor(t, 10*time.Second, "git tag env/dev to follow dev", func() bool {
		return gitCmd(t, dir, "--git-dir="+repo, "tag", "--list", "env/dev") != "" &&
			gitCmd(t, dir, "--git-dir="+repo, "rev-parse", "env/dev^{commit}") == change
	})
	waitFor(t, 10*time.Second, "registry tag latest to follow dev", func() bool {
		latest, err := d.tagDigest("latest")
		return err == nil && latest == devSt.Digest
	})
	if latest, err := d.tagDigest("latest"); err != nil || latest != devSt.Digest {
		t.Errorf("registry latest = %s (%v), want dev's %s", latest, err, devSt.Digest)
	}
	// Only ferry writes to (or reads) its registry: a local user's request
	// without its credentials is refused and changes nothing.
	planted := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + devSt.Digest + `","size":1},"layers":[]}`
	for _, req := range []struct{ method, path, body string }{
		{"GET", "manifests/latest", ""},
		{"PUT", "manifests/latest", planted},
		{"PUT", "manifests/sha-" + strings.Repeat("0", 40), planted},
		{"DELETE", "manifests/" + devSt.Digest, ""},
		{"POST", "blobs/uploads/", ""},
	} {
		if got := d.anonymousStatus(t, req.method, req.path, req.body); got != http.StatusUnauthorized {
			t.Errorf("%s /v2/birthday-app/%s without credentials = %d, want 401", req.method, req.path, got)
		}
	}
	if latest, err := d.tagDigest("latest"); err != nil || latest != devSt.Digest {
		t.Errorf("registry latest after the refused requests = %s (%v), want dev's %s", latest, err, devSt.Digest)
	}

	// Scaling under load drops nothing and is recorded.
	l = startLoad(devURL+"/statusz", 4)
	if _, stderr, code := run(t, "scale", "dev", "3", "--server", apiURL); code != 0 {
		t.Fatalf("ferry scale dev 3: exit %d: %s", code, stderr)
	}
	l.finish()
	if l.failed.Load() != 0 {
		t.Errorf("scaling: %d failed requests (first: %s)", l.failed.Load(), l.firstErr)
	}
	if s, err := c.Status(ctx); err != nil || s.Environments[0].Replicas.Ready != 3 || s.Environments[0].Replicas.Desired != 3 {
		t.Errorf("after ferry scale dev 3: %+v, %v; want 3/3", s, err)
	}
	if stdout, _, code := run(t, "logs", "dev", "--tail", "5", "--server", apiURL); code != 0 || !strings.Contains(stdout, "dev-") {
		t.Errorf("ferry logs dev: exit %d, output %q; want replica lines", code, stdout)
	}

	// Access: a deployer token, made through the API with the demo's
	// admin token, is refused a change of prod (releaser needed).
	ci, stderr, code := run(t, "token", "create", "--name", "ci", "--role", "deployer", "--server", apiURL)
	if code != 0 {
		t.Fatalf("ferry token create: exit %d: %s", code, stderr)
	}
	_, stderr, code = run(t, "scale", "prod", "2", "--server", apiURL, "--token", strings.TrimSpace(ci))
	if code != 1 || !strings.Contains(stderr, `token "ci" has role deployer; this needs releaser`) {
		t.Errorf("ferry scale prod 2 with a deployer token: exit %d %q, want the refusal", code, stderr)
	}

	// Broken images never reach dev: the integration step runs each on
	// trial (its own database, its own port) and fails the build, while
	// dev keeps serving the change. The breaks hide from the unit tests:
	// they happen only where ferry runs the image (FERRY_DATA_DIR is set).
	for _, bad := range []struct{ name, code, reason string }{
		{"exits at start", "package main\n\nimport \"os\"\n\nfunc init() {\n\tif os.Getenv(\"FERRY_DATA_DIR\") != \"\" {\n\t\tos.Exit(3)\n\t}\n}\n",
			"step integration: the image did not start"},
		{"never ready", "package main\n\nimport (\n\t\"os\"\n\t\"time\"\n)\n\nfunc init() {\n\tif os.Getenv(\"FERRY_DATA_DIR\") != \"\" {\n\t\ttime.Sleep(time.Hour)\n\t}\n}\n",
			"step integration: the image did not start"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			l := startLoad(devURL+"/statusz", 2)
			commit := push("cmd/birthday-app/zz_broken.go", bad.code, "break: "+bad.name)
			var b *ferry.Build
			waitFor(t, 4*time.Minute, "the broken commit's build to end", func() bool {
				bs, err := c.Builds(ctx, "master", nil, 10)
				if err != nil {
					return false
				}
				for _, x := range bs {
					if x.Commit == commit && x.State.Final() {
						b = x
						return true
					}
				}
				return false
			})
			l.finish()
			t.Logf("%s: build %d %s (%s); %d requests ok, %d failed", bad.name, b.ID, b.State, b.Reason, l.ok.Load(), l.failed.Load())
			if b.State != ferry.BuildFailed || !strings.Contains(b.Reason, bad.reason) {
				t.Errorf("build of %s = %s (%q), want failed: %s", ferry.ShortSHA(commit), b.State, b.Reason, bad.reason)
			}
			if ds, err := c.Deployments(ctx, "dev", 10); err != nil || slices.ContainsFunc(ds, func(d *ferry.Deployment) bool { return d.Commit == commit }) {
				t.Errorf("dev deployments = %v, %v; want none of the broken %.12s", ds, err, commit)
			}
			if got := versionOf(t, devURL); got != change {
				t.Errorf("dev serves %s, want the last good %s", got, change)
			}
			if l.failed.Load() != 0 {
				t.Errorf("while the broken commit was tried: %d failed requests (first: %s)", l.failed.Load(), l.firstErr)
			}
			gitCmd(t, work, "rm", "-q", "cmd/birthday-app/zz_broken.go")
			gitCmd(t, work, "commit", "-q", "-m", "revert: "+bad.name)
		})
	}

	// The demo's repository runs ferry's pre-receive hook: release may be
	// created on master, but a non-fast-forward push is refused with the
	// reason and leaves release where it was.
	t.Run("hook refuses a non-fast-forward of release", func(t *testing.T) {
		first := gitCmd(t, work, "rev-parse", head+"~1")
		if out, err := gitTry(work, "push", "origin", head+":refs/heads/release"); err != nil || !strings.Contains(out, "remote: ferry: release → "+head[:12]+" accepted") {
			t.Fatalf("creating release at master's %.12s: %v\n%s\nwant it accepted by ferry's hook", head, err, out)
		}
		out, err := gitTry(work, "push", "--force", "origin", first+":refs/heads/release")
		if err == nil || !strings.Contains(out, "remote: ferry: refusing to update release: "+first[:12]+" is not a fast-forward of "+head[:12]) {
			t.Errorf("git push --force of an older commit to release: %v\n%s\nwant a refusal by ferry's hook", err, out)
		}
		if got := gitCmd(t, dir, "--git-dir="+repo, "rev-parse", "release"); got != head {
			t.Errorf("release = %.12s after the refused push, want %.12s", got, head)
		}
	})
}

// tagDigest reads the digest the demo's embedded registry stores under
// tag, from its storage: the registry answers only ferry, which alone
// holds its credentials.
func (d *liveDemo) tagDigest(tag string) (string, error) {
	link := filepath.Join(d.dir, "ferry-data", "registry", "docker", "registry", "v2", "repositories",
		"birthday-app", "_manifests", "tags", tag, "current", "link")
	b, err := os.ReadFile(link)
	return strings.TrimSpace(string(b)), err
}

// anonymousStatus is the status the demo's registry answers method on
// path (under /v2/birthday-app/) without credentials, as a replica or
// another local user would ask.
func (d *liveDemo) anonymousStatus(t *testing.T, method, path, body string) int {
	t.Helper()
	host, _, _ := strings.Cut(d.image, "/")
	req, err := http.NewRequest(method, "http://"+host+"/v2/birthday-app/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

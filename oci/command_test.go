package oci

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// toolDir holds programs compiled for the tests; TestMain removes it.
var toolDir string

func TestMain(m *testing.M) {
	var err error
	if toolDir, err = os.MkdirTemp("", "ferry-oci-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(toolDir)
	os.Exit(code)
}

var pushImage struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// pushImageTool compiles testdata/pushimage, a stand-in for "docker build
// && docker push $FERRY_IMAGE", once per test binary.
func pushImageTool(t *testing.T) string {
	t.Helper()
	pushImage.once.Do(func() {
		pushImage.path = filepath.Join(toolDir, "pushimage")
		cmd := exec.Command("go", "build", "-o", pushImage.path, "./testdata/pushimage")
		pushImage.out, pushImage.err = cmd.CombinedOutput()
	})
	if pushImage.err != nil {
		t.Fatalf("build testdata/pushimage: %v\n%s", pushImage.err, pushImage.out)
	}
	return pushImage.path
}

func TestRunCommandPushes(t *testing.T) {
	tool := pushImageTool(t)
	ctx := t.Context()
	p := newPublisher(t, memRegistry(t)+"/team/app")
	c := commitN(20)
	tag := "sha-" + c
	var log strings.Builder
	err := RunCommand(ctx, CommandBuild{
		Dir:     t.TempDir(),
		Command: `echo "building $FERRY_SHORT_COMMIT"; "$PUSHIMAGE"`,
		Env:     []string{"PUSHIMAGE=" + tool, "FERRY_COMMIT=" + c, "FERRY_SHORT_COMMIT=" + c[:12]},
		Ref:     p.Ref(tag),
	}, &log)
	if err != nil {
		t.Fatalf("RunCommand: %v\n%s", err, log.String())
	}
	d, err := p.Resolve(ctx, tag)
	if err != nil {
		t.Fatalf("Resolve(%s) after the command: %v", tag, err)
	}
	if !strings.Contains(log.String(), "building "+c[:12]+"\n") || !strings.Contains(log.String(), "pushed "+d+"\n") {
		t.Errorf("log lacks the command's output:\n%s", log.String())
	}
	img, err := p.Image(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Labels[LabelRevision]; got != c {
		t.Errorf("pushed image revision label = %q, want %q", got, c)
	}
}

func TestRunCommandFails(t *testing.T) {
	var log strings.Builder
	err := RunCommand(t.Context(), CommandBuild{
		Dir:     t.TempDir(),
		Command: `echo step 1; echo "error: no Dockerfile in $PWD" >&2; exit 3`,
		Ref:     "127.0.0.1:5050/app:sha-" + commitN(21),
	}, &log)
	if err == nil {
		t.Fatal("RunCommand of a failing command succeeded")
	}
	for _, want := range []string{"build command", "exit status 3", "error: no Dockerfile in "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = true for a failing build command", err)
	}
	for _, want := range []string{"$ echo step 1;", "step 1\n", "error: no Dockerfile in "} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

func TestRunCommandEnv(t *testing.T) {
	ref := "127.0.0.1:5050/app:sha-" + commitN(22)
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"FERRY_IMAGE from Ref", nil, "image=" + ref + "\n"},
		{"FERRY_IMAGE from Env", []string{"FERRY_IMAGE=other/app:x"}, "image=other/app:x\n"},
	}
	for _, tt := range tests {
		var log strings.Builder
		err := RunCommand(t.Context(), CommandBuild{Dir: t.TempDir(), Command: `echo "image=$FERRY_IMAGE"`, Env: tt.env, Ref: ref}, &log)
		if err != nil || !strings.Contains(log.String(), tt.want) {
			t.Errorf("%s: RunCommand = %v, log %q, want it to contain %q", tt.name, err, log.String(), tt.want)
		}
	}
	dir := t.TempDir()
	for _, b := range []CommandBuild{{Dir: dir, Command: " ", Ref: ref}, {Dir: dir, Command: "true"}, {Command: "true", Ref: ref}} {
		if err := RunCommand(t.Context(), b, nil); err == nil {
			t.Errorf("RunCommand(%+v) succeeded, want an error", b)
		}
	}
}

func TestRunCommandCanceled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The child sleeps hold the output pipe open: only killing the whole
	// process group ends the command promptly.
	err := RunCommand(ctx, CommandBuild{Dir: t.TempDir(), Command: "sleep 30 & sleep 30; wait", Ref: "127.0.0.1:5050/app:x"}, nil)
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Errorf("RunCommand past its deadline = %v, want context deadline exceeded", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("canceled command returned after %s, want promptly", took)
	}
}

// Package cosigntest runs the real cosign CLI for tests: found through
// FERRY_TEST_COSIGN (scripts/provision.sh installs it from its Go module),
// else on PATH; when it is missing the test fails if FERRY_TEST_REQUIRE
// names cosign, and is skipped otherwise.
package cosigntest

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/testenv"
)

// CLI is the cosign binary with an environment of its own: a temporary
// HOME and DOCKER_CONFIG (registry credentials go there, see Login), no
// transparency log, empty key passwords.
type CLI struct {
	path string
	env  []string
	home string
}

// New finds cosign, under the suite's rule for missing parts.
func New(t testing.TB) *CLI {
	t.Helper()
	path := os.Getenv("FERRY_TEST_COSIGN")
	if path == "" {
		if p, err := exec.LookPath("cosign"); err == nil {
			path = p
		}
	}
	if path == "" {
		testenv.Unavailable(t, "cosign", "no cosign CLI: set FERRY_TEST_COSIGN (scripts/provision.sh installs it) or put cosign on PATH")
	}
	home := t.TempDir()
	docker := filepath.Join(home, "docker")
	if err := os.MkdirAll(docker, 0o700); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+docker, "COSIGN_PASSWORD=", "COSIGN_YES=true", "TUF_ROOT="+filepath.Join(home, "tuf"))
	return &CLI{path: path, env: env, home: home}
}

// Login writes the registry's credentials into the CLI's docker
// configuration, where cosign reads them.
func (c *CLI) Login(t testing.TB, host, user, password string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, auth)
	if err := os.WriteFile(filepath.Join(c.home, "docker", "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// DockerConfig is the directory of the CLI's docker configuration.
func (c *CLI) DockerConfig() string { return filepath.Join(c.home, "docker") }

// Try runs cosign with args and returns its standard output, and an error
// holding standard error when it fails.
func (c *CLI) Try(args ...string) (string, error) {
	cmd := exec.Command(c.path, args...)
	cmd.Env = c.env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("cosign %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Run is Try that fails the test when cosign fails.
func (c *CLI) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.Try(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// GenerateKeyPair makes dir/prefix.key and dir/prefix.pub with
// `cosign generate-key-pair` (empty password).
func (c *CLI) GenerateKeyPair(t testing.TB, dir, prefix string) {
	t.Helper()
	c.Run(t, "generate-key-pair", "--output-key-prefix", filepath.Join(dir, prefix))
}

// ImportKey converts a PEM private key into cosign's format, as
// dir/prefix.key (empty password), with `cosign import-key-pair`.
func (c *CLI) ImportKey(t testing.TB, dir, key, prefix string) {
	t.Helper()
	c.Run(t, "import-key-pair", "--key", key, "--output-key-prefix", filepath.Join(dir, prefix))
}

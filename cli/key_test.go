package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tinyConfig is a valid ferry.yaml that starts nothing by being read.
const tinyConfig = `app: tiny
dataDir: data
source: { repo: /srv/git/tiny.git }
build: { go: { main: . } }
environments:
  dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } }
`

// TestKeyPublic: `ferry key public` prints the public key ferry signs with
// (made at first use, the same afterwards, the file cosign.pub in the data
// directory), and a configured key's public half.
func TestKeyPublic(t *testing.T) {
	dir := t.TempDir()
	yaml := tinyConfig
	cfg := filepath.Join(dir, "ferry.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	first, stderr, code := run(t, "key", "public", "-c", cfg)
	if code != 0 || !strings.HasPrefix(first, "-----BEGIN PUBLIC KEY-----\n") {
		t.Fatalf("ferry key public = %d %q (stderr %q), want a PEM public key", code, first, stderr)
	}
	again, _, _ := run(t, "key", "public", "-c", cfg)
	file, err := os.ReadFile(filepath.Join(dir, "data", "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if again != first || string(file) != first {
		t.Errorf("second run printed %q and data/cosign.pub holds %q, want both %q", again, file, first)
	}

	// A configured key: its public half, not the data directory's.
	if err := os.Rename(filepath.Join(dir, "data", "signing.key"), filepath.Join(dir, "mine.key")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(yaml+"signing: { key: mine.key }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mine, stderr, code := run(t, "key", "public", "-c", cfg)
	if code != 0 || mine != first {
		t.Errorf("ferry key public with signing.key = %d %q (stderr %q), want %q", code, mine, stderr, first)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "signing.key")); err == nil {
		t.Error("with signing.key set, ferry made a key of its own in the data directory")
	}
}

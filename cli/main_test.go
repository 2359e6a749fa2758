package cli

import (
	"os"
	"testing"
)

// TestMain points the credentials file into an empty directory and drops a
// FERRY_TOKEN of the caller's, so that no test reads or writes the user's.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-cli-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	os.Unsetenv("FERRY_TOKEN")
	code := m.Run()
	os.RemoveAll(dir)
	removeFerryBinary()
	os.Exit(code)
}

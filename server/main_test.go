package server

import (
	"os"
	"testing"
)

// TestMain removes the ferry binary the tests built once they are done.
func TestMain(m *testing.M) {
	code := m.Run()
	removeFerryBinary()
	os.Exit(code)
}

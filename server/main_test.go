package server

import (
	"os"
	"testing"

	"github.com/ferryhq/ferry/runtime/local"
)

// TestMain lets this test binary serve as the local runtime's sandbox
// init: as root, replicas start as /proc/self/exe and become the app.
func TestMain(m *testing.M) {
	local.MaybeSandboxInit()
	code := m.Run()
	removeFerryBinary()
	os.Exit(code)
}

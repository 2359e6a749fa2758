// Package testenv applies the suite's rule for tests that need a part from
// outside Go (a database server, a Kubernetes control plane, a browser,
// root): when the part is missing, the test fails if FERRY_TEST_REQUIRE (a
// comma list such as "postgres,kubernetes") names it, and is skipped
// otherwise, so that a run that provisions everything cannot pass by
// skipping.
package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// required reports whether the comma list require names part.
func required(require, part string) bool {
	for r := range strings.SplitSeq(require, ",") {
		if strings.TrimSpace(r) == part {
			return true
		}
	}
	return false
}

// Unavailable ends t because part is missing, saying why: with t.Fatal
// when FERRY_TEST_REQUIRE names part, with t.Skip otherwise.
func Unavailable(t testing.TB, part, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if required(os.Getenv("FERRY_TEST_REQUIRE"), part) {
		t.Fatalf("%s (FERRY_TEST_REQUIRE names %s)", msg, part)
		return
	}
	t.Skip(msg)
}

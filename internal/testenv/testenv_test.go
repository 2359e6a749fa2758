package testenv

import (
	"fmt"
	"testing"
)

func TestRequired(t *testing.T) {
	tests := []struct {
		require, part string
		want          bool
	}{
		{"", "postgres", false},
		{"postgres", "postgres", true},
		{"mysql,postgres", "postgres", true},
		{" mysql , postgres ", "postgres", true},
		{"postgres", "post", false},
		{"postgresql", "postgres", false},
	}
	for _, tt := range tests {
		if got := required(tt.require, tt.part); got != tt.want {
			t.Errorf("required(%q, %q) = %v, want %v", tt.require, tt.part, got, tt.want)
		}
	}
}

// ending records how Unavailable ended a test, without ending this one.
type ending struct {
	testing.TB
	fatal, skip string
}

func (e *ending) Helper()                        {}
func (e *ending) Fatalf(format string, a ...any) { e.fatal = fmt.Sprintf(format, a...) }
func (e *ending) Skip(a ...any)                  { e.skip = fmt.Sprint(a...) }

func TestUnavailable(t *testing.T) {
	tests := []struct {
		require     string
		fatal, skip string
	}{
		{"", "", "no server at :5432"},
		{"kubernetes", "", "no server at :5432"},
		{"kubernetes, postgres", "no server at :5432 (FERRY_TEST_REQUIRE names postgres)", ""},
	}
	for _, tt := range tests {
		t.Setenv("FERRY_TEST_REQUIRE", tt.require)
		e := &ending{TB: t}
		Unavailable(e, "postgres", "no server at %s", ":5432")
		if e.fatal != tt.fatal || e.skip != tt.skip {
			t.Errorf("with FERRY_TEST_REQUIRE=%q: Unavailable fatal %q, skip %q; want fatal %q, skip %q", tt.require, e.fatal, e.skip, tt.fatal, tt.skip)
		}
	}
}

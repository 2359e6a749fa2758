package buildinfo_test

import (
	"runtime/debug"
	"testing"

	"github.com/ferryhq/ferry/examples/birthday-app/internal/buildinfo"
)

func TestFrom(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.0", Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2025-05-17T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	tests := []struct {
		name              string
		commit, buildTime string
		bi                *debug.BuildInfo
		want              buildinfo.Info
	}{
		{"ldflags win", "abc", "2026-01-02T03:04:05Z", vcs,
			buildinfo.Info{Commit: "abc", BuildTime: "2026-01-02T03:04:05Z", GoVersion: "go1.26.0"}},
		{"vcs stamp", "", "", vcs,
			buildinfo.Info{Commit: "0123456789abcdef0123456789abcdef01234567", BuildTime: "2025-05-17T10:00:00Z", Modified: true, GoVersion: "go1.26.0"}},
		{"no vcs", "", "", &debug.BuildInfo{GoVersion: "go1.26.0"},
			buildinfo.Info{Commit: "unknown", BuildTime: "unknown", GoVersion: "go1.26.0"}},
		{"no build info", "", "", nil,
			buildinfo.Info{Commit: "unknown", BuildTime: "unknown", GoVersion: "unknown"}},
	}
	for _, tt := range tests {
		if got := buildinfo.From(tt.commit, tt.buildTime, tt.bi); got != tt.want {
			t.Errorf("%s: From(%q, %q, …) = %+v, want %+v", tt.name, tt.commit, tt.buildTime, got, tt.want)
		}
	}
}

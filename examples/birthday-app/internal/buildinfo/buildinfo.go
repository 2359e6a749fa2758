// Package buildinfo reports which code a birthday-app binary was built
// from. Builds set it with
//
//	go build -ldflags "-X github.com/ferryhq/ferry/examples/birthday-app/internal/buildinfo.Commit=<sha> \
//	                   -X github.com/ferryhq/ferry/examples/birthday-app/internal/buildinfo.BuildTime=<RFC 3339>"
//
// Without them it falls back to the VCS stamp the go command embeds
// (vcs.revision, vcs.time), and to "unknown".
package buildinfo

import (
	"runtime/debug"
)

// Set at link time with -ldflags -X.
var (
	Commit    string
	BuildTime string
)

// Unknown is reported for what the build did not record.
const Unknown = "unknown"

// Info is what the binary knows about its build.
type Info struct {
	Commit    string `json:"commit"`
	BuildTime string `json:"buildTime"`
	// Modified is true when the VCS stamp says the work tree had changes.
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
}

// Read returns the build's information.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return From(Commit, BuildTime, bi)
}

// From combines link-time values with the go command's build information
// (nil when there is none); link-time values win.
func From(commit, buildTime string, bi *debug.BuildInfo) Info {
	info := Info{Commit: commit, BuildTime: buildTime, GoVersion: Unknown}
	if bi != nil {
		info.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.BuildTime == "" {
					info.BuildTime = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true" && commit == ""
			}
		}
	}
	if info.Commit == "" {
		info.Commit = Unknown
	}
	if info.BuildTime == "" {
		info.BuildTime = Unknown
	}
	return info
}

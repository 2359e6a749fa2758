package release

import (
	"fmt"
	"strings"

	"github.com/ferryhq/ferry"
)

// MaxNoteLines bounds the commits listed in release notes; the rest are
// counted in a last line.
const MaxNoteLines = 200

// ReleaseNotes renders the message of release tag's annotated git tag: a
// header line, then one line per commit since the previous release
// (commits newest first, as source.Repo.Log returns them) with its short
// hash, subject and author. previous names the previous release (its tag
// or commit) and is empty for the first release.
//
//	RC20240301_1200: 2 commits since RC20240229_0900
//
//	  1a2b3c4d5e6f fix: birthdays on Feb 29 (Ada Lovelace)
//	  9f8e7d6c5b4a docs: how to run birthday-app (Grace Hopper)
func ReleaseNotes(tag, previous string, commits []ferry.Commit) string {
	var b strings.Builder
	n := len(commits)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	switch {
	case previous == "":
		fmt.Fprintf(&b, "%s: first release, %d commit%s\n", tag, n, plural)
	case n == 0:
		fmt.Fprintf(&b, "%s: no new commits since %s\n", tag, previous)
	default:
		fmt.Fprintf(&b, "%s: %d commit%s since %s\n", tag, n, plural, previous)
	}
	if n > 0 {
		b.WriteByte('\n')
	}
	for i, c := range commits {
		if i == MaxNoteLines {
			fmt.Fprintf(&b, "  … and %d more\n", n-i)
			break
		}
		fmt.Fprintf(&b, "  %s %s (%s)\n", ferry.ShortSHA(c.SHA), oneLine(c.Subject), oneLine(c.Author))
	}
	return b.String()
}

// oneLine keeps a field on its line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

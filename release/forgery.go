package release

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/ferryhq/ferry"
)

// Record is what the ledger holds of a release: the commit and digest of
// the newest deployment that carried its name, whatever its state (an
// attempt that failed still made the release's registry tag).
type Record struct {
	Commit, Digest string
}

// Records are the releases of deployments ds (newest first), by name.
func Records(ds []*ferry.Deployment) map[string]Record {
	out := map[string]Record{}
	for _, d := range ds {
		if _, seen := out[d.Release]; d.Release != "" && !seen {
			out[d.Release] = Record{Commit: d.Commit, Digest: d.Digest}
		}
	}
	return out
}

// Forgery is a release tag that ferry did not make as it stands: in git
// or in the registry, with no release of that name in the ledger, or
// naming another commit or digest than its release ran.
type Forgery struct {
	// Where is "git" or "registry".
	Where string
	Tag   string
	// Got is what the tag names; Want what the ledger's release ran (""
	// when there is no such release).
	Got, Want string
	// Why says it in a sentence.
	Why string
}

// Forgeries compares the release tags of git (name → commit) and of the
// registry (name → digest) with the ledger's records; names that are not
// release tags are ignored. The result is sorted by where, then tag.
func Forgeries(records map[string]Record, git, registry map[string]string) []Forgery {
	var out []Forgery
	check := func(where string, tags map[string]string, want func(Record) string, what string) {
		for tag, got := range tags {
			if !ferry.IsReleaseTag(tag) {
				continue
			}
			rec, ok := records[tag]
			switch {
			case !ok:
				out = append(out, Forgery{Where: where, Tag: tag, Got: got, Why: fmt.Sprintf("%s tag %s names %s, but the ledger has no release %s: ferry never made it", where, tag, shortID(got), tag)})
			case want(rec) != got:
				out = append(out, Forgery{Where: where, Tag: tag, Got: got, Want: want(rec),
					Why: fmt.Sprintf("%s tag %s names %s, but release %s ran %s %s", where, tag, shortID(got), tag, what, shortID(want(rec)))})
			}
		}
	}
	check("git", git, func(r Record) string { return r.Commit }, "commit")
	check("registry", registry, func(r Record) string { return r.Digest }, "digest")
	slices.SortFunc(out, func(a, b Forgery) int { return cmp.Or(cmp.Compare(a.Where, b.Where), cmp.Compare(a.Tag, b.Tag)) })
	return out
}

// shortID shortens a commit or a digest for a sentence.
func shortID(id string) string {
	if ferry.ValidDigest(id) {
		return ferry.ShortDigest(id)
	}
	return short(id)
}

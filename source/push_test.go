package source

import (
	"context"
	"testing"

	"github.com/ferryhq/ferry"
)

func TestSetRef(t *testing.T) {
	ctx := context.Background()
	origin := t.TempDir()
	gitIn(t, origin, "init", "-q", "--bare")
	work := t.TempDir()
	gitIn(t, work, "init", "-q", "-b", "master")
	gitIn(t, work, "commit", "-q", "--allow-empty", "-m", "one")
	one := gitIn(t, work, "rev-parse", "HEAD")
	gitIn(t, work, "commit", "-q", "--allow-empty", "-m", "two")
	two := gitIn(t, work, "rev-parse", "HEAD")
	gitIn(t, work, "push", "-q", origin, "master")

	r := Open(origin, t.TempDir(), nil)
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	remoteRef := func(ref string) string {
		out := gitIn(t, origin, "for-each-ref", "--format=%(objectname)", ref)
		return out
	}
	// A moving tag is forced.
	if err := r.SetRef(ctx, "refs/tags/env/dev", one, ""); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRef(ctx, "refs/tags/env/dev", two, ""); err != nil {
		t.Fatal(err)
	}
	if got := remoteRef("refs/tags/env/dev"); got != two {
		t.Errorf("env/dev = %q, want %s", got, two)
	}
	// A branch moved back with a lease succeeds when the lease holds ...
	if err := r.SetRef(ctx, "refs/heads/master", one, two); err != nil {
		t.Fatal(err)
	}
	if got := remoteRef("refs/heads/master"); got != one {
		t.Errorf("master = %q, want %s", got, one)
	}
	// ... and is refused when someone moved it meanwhile.
	err := r.SetRef(ctx, "refs/heads/master", two, two)
	if ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Fatalf("SetRef with a stale lease = %v, want ECONFLICT", err)
	}
	if got := remoteRef("refs/heads/master"); got != one {
		t.Errorf("master after refused push = %q, want %s (unchanged)", got, one)
	}
	if err := r.SetRef(ctx, "refs/heads/x y", one, ""); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("SetRef(bad ref) = %v, want EINVALID", err)
	}
}

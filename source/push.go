package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryhq/ferry"
)

// SetRef points ref (e.g. refs/tags/env/dev, refs/heads/release) at sha on
// the remote, pushing from the cache. With expect set (a full commit id, or
// ferry.ZeroSHA for "must not exist"), the update is made only if the remote's ref
// still points there — git's force-with-lease — and a mismatch is ECONFLICT;
// with expect empty the ref is forced. The cache's copy of the ref follows.
func (r *Repo) SetRef(ctx context.Context, ref, sha, expect string) error {
	if !strings.HasPrefix(ref, "refs/") || strings.ContainsAny(ref, " ~^:?*[\\") {
		return ferry.Errorf(ferry.EINVALID, "invalid ref %q", ref)
	}
	if !ferry.ValidCommit(sha) {
		return ferry.Errorf(ferry.EINVALID, "invalid commit %q", sha)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "HEAD")); err != nil {
		if err := r.Fetch(ctx); err != nil { // the cache is made by the first fetch
			return err
		}
	}
	defer r.lockRefs()() // a concurrent fetch would race on the same ref
	args := []string{"-c", "protocol.file.allow=always", "push", "--quiet", "--porcelain"}
	if expect != "" {
		lease := expect
		if expect == ferry.ZeroSHA {
			lease = ""
		}
		args = append(args, "--force-with-lease="+ref+":"+lease)
	} else {
		args = append(args, "--force")
	}
	args = append(args, "origin", sha+":"+ref)
	if _, err := r.git(ctx, args...); err != nil {
		if expect != "" {
			// Was it the lease? Ask the remote what the ref is now.
			if now, lerr := r.remoteRef(ctx, ref); lerr == nil && now != strings.TrimPrefix(expect, ferry.ZeroSHA) {
				return ferry.Errorf(ferry.ECONFLICT, "%s is %s on the remote, not %s as expected: it moved meanwhile",
					ref, dashIfEmpty(ferry.ShortSHA(now)), ferry.ShortSHA(expect))
			}
		}
		return fmt.Errorf("push %s to %s: %w", ferry.ShortSHA(sha), ref, err)
	}
	if _, err := r.git(ctx, "update-ref", ref, sha); err != nil {
		return fmt.Errorf("update cached %s: %w", ref, err)
	}
	return nil
}

// remoteRef asks the remote where ref points ("" when it does not exist).
func (r *Repo) remoteRef(ctx context.Context, ref string) (string, error) {
	out, err := r.git(ctx, "-c", "protocol.file.allow=always", "ls-remote", "origin", ref)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == ref {
			return f[0], nil
		}
	}
	return "", nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "absent"
	}
	return s
}

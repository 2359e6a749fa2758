package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ferryhq/ferry"
)

// Checkout writes a clean tree of exactly commit sha to dir, which must not
// exist or be empty. It is a shared clone of the cache (`git clone --shared
// --no-checkout`, then `git checkout --detach sha`): git itself writes the
// files, so attributes and filters apply as in any clone; the only extra
// entry is a small .git directory that borrows the cache's objects, so
// `git rev-parse HEAD`, `git log` and `git describe --tags` work inside it.
// Its origin is the cache, never the remote's URL, so no credentials end up
// in the tree. Checkouts share nothing but the cache's objects: any number
// may run at once, alongside reads and fetches. Remove one with
// RemoveCheckout.
//
// Why not a git worktree: `git worktree add` is not safe to run
// concurrently — two adds read each other's half-written metadata, and a
// fetch fails its connectivity check on the placeholder HEAD of a worktree
// being added ("fatal: bad object worktrees/…/HEAD") — so every checkout
// would wait for every fetch and every other checkout. Why not `git
// archive | tar`: archive honours export-ignore and export-subst, so the
// tree would not be exactly the commit's.
func (r *Repo) Checkout(ctx context.Context, sha, dir string) error {
	full, err := r.resolve(ctx, sha)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return fmt.Errorf("checkout %s: %w", ferry.ShortSHA(full), err)
	}
	// No hooks and no template: the user's global core.hooksPath and
	// init.templateDir have no business running in ferry's checkouts.
	_, err = run(ctx, r.timeout(), "", r.redact, "-c", "core.hooksPath="+os.DevNull,
		"clone", "--quiet", "--shared", "--no-checkout", "--template=", "--", r.dir, abs)
	if err != nil {
		return fmt.Errorf("checkout %s: %w", ferry.ShortSHA(full), err)
	}
	_, err = run(ctx, r.timeout(), abs, r.redact, "-c", "core.hooksPath="+os.DevNull, "-c", "core.autocrlf=false",
		"checkout", "--quiet", "--detach", full)
	if err != nil {
		os.RemoveAll(abs) // leave nothing half-made behind
		return fmt.Errorf("checkout %s: %w", ferry.ShortSHA(full), err)
	}
	return nil
}

// RemoveCheckout deletes a checkout made by Checkout, including anything the
// build added to it. Removing a checkout that is already gone is not an
// error. The cache keeps no record of checkouts, so there is nothing to
// prune.
func (r *Repo) RemoveCheckout(ctx context.Context, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove checkout: %w", err)
	}
	return nil
}

package source

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry"
)

// DefaultTagger is the identity CreateTag signs release tags with.
const DefaultTagger = "ferry <ferry@localhost>"

// CreateTag is CreateTagAs with DefaultTagger.
func (r *Repo) CreateTag(ctx context.Context, name, commit, message string) error {
	return r.CreateTagAs(ctx, name, commit, message, DefaultTagger)
}

// CreateTagAs makes the annotated tag name on commit, with message (kept
// verbatim but for surrounding blank lines) and tagger ("Name <email>", or
// just a name), in the cache and pushes it to the remote. A tag never
// moves: when name already names another commit, in the cache or on the
// remote, the result is ferry.ECONFLICT and nothing changes. Creating a tag
// that already names commit is not an error (a retry after a crash), so
// the call is idempotent. When the push fails, the cache's copy is removed
// again, so the cache never shows a tag the remote lacks.
func (r *Repo) CreateTagAs(ctx context.Context, name, commit, message, tagger string) error {
	if err := checkTagName(name); err != nil {
		return err
	}
	if !ferry.ValidCommit(commit) {
		return ferry.Errorf(ferry.EINVALID, "invalid commit %q", commit)
	}
	if _, err := r.resolve(ctx, commit); err != nil {
		return err
	}
	ref := "refs/tags/" + name
	defer r.lockRefs()() // a concurrent fetch (with --prune) would race on the same ref

	created := false
	switch have, err := r.peeledTag(ctx, ref); {
	case err != nil:
		return err
	case have == "":
		who, email := splitIdentity(tagger)
		if _, err := r.git(ctx, "-c", "user.name="+who, "-c", "user.email="+email,
			"tag", "--annotate", "--cleanup=whitespace", "--message="+message, "--", name, commit); err != nil {
			return fmt.Errorf("tag %s: %w", name, err)
		}
		created = true
	case have != commit:
		return ferry.Errorf(ferry.ECONFLICT, "tag %s already names %s, not %s: tags never move", name, ferry.ShortSHA(have), ferry.ShortSHA(commit))
	}
	// No force: git refuses to replace a tag that exists on the remote.
	_, err := r.git(ctx, "-c", "protocol.file.allow=always", "push", "--quiet", "--porcelain", "origin", ref+":"+ref)
	if err == nil {
		return nil
	}
	perr := fmt.Errorf("push tag %s: %w", name, err)
	remote, lerr := r.remotePeeled(ctx, ref)
	switch {
	case lerr == nil && remote == commit:
		return nil // the remote already has this release (another writer, or an earlier attempt)
	case lerr == nil && remote != "":
		perr = ferry.Errorf(ferry.ECONFLICT, "tag %s already names %s on the remote, not %s: tags never move", name, ferry.ShortSHA(remote), ferry.ShortSHA(commit))
	}
	if created {
		if _, derr := r.git(ctx, "update-ref", "-d", ref); derr != nil {
			return errors.Join(perr, fmt.Errorf("remove cached tag %s: %w", name, derr))
		}
	}
	return perr
}

// checkTagName refuses names git would reject or take for an option.
func checkTagName(name string) error {
	if name == "" || strings.HasPrefix(name, "-") || strings.ContainsAny(name, " ~^:?*[\\\x7f") ||
		strings.Contains(name, "..") || strings.Contains(name, "@{") || strings.HasSuffix(name, ".lock") ||
		strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") || strings.Contains(name, "//") {
		return ferry.Errorf(ferry.EINVALID, "invalid tag name %q", name)
	}
	for _, c := range name {
		if c < ' ' {
			return ferry.Errorf(ferry.EINVALID, "invalid tag name %q", name)
		}
	}
	return nil
}

// peeledTag returns the commit the cache's ref names ("" if there is no
// such ref).
func (r *Repo) peeledTag(ctx context.Context, ref string) (string, error) {
	out, err := r.git(ctx, "for-each-ref", "--format=%(refname)%00%(objectname)%00%(*objectname)", ref)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\x00")
		if len(f) == 3 && f[0] == ref {
			if f[2] != "" {
				return f[2], nil
			}
			return f[1], nil
		}
	}
	return "", nil
}

// remotePeeled asks the remote which commit tag ref names ("" when it
// does not exist).
func (r *Repo) remotePeeled(ctx context.Context, ref string) (string, error) {
	out, err := r.git(ctx, "-c", "protocol.file.allow=always", "ls-remote", "origin", ref, ref+"^{}")
	if err != nil {
		return "", err
	}
	var direct, peeled string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		switch f[1] {
		case ref:
			direct = f[0]
		case ref + "^{}":
			peeled = f[0]
		}
	}
	if peeled != "" {
		return peeled, nil
	}
	return direct, nil
}

// splitIdentity splits "Name <email>"; a bare name gets a local address.
func splitIdentity(s string) (name, email string) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 && strings.HasSuffix(s, ">") {
		name, email = strings.TrimSpace(s[:i]), s[i+1:len(s)-1]
	} else {
		name = s
	}
	if name == "" {
		name = "ferry"
	}
	if email == "" {
		email = strings.ToLower(strings.Join(strings.Fields(name), ".")) + "@localhost"
	}
	return name, email
}

// ResolveTag returns the commit a tag (lightweight or annotated) points at
// in the cache; ENOTFOUND when there is no such tag.
func (r *Repo) ResolveTag(ctx context.Context, tag string) (string, error) {
	if err := checkTagName(tag); err != nil {
		return "", err
	}
	return r.resolve(ctx, "refs/tags/"+tag)
}

// Tags returns the cache's tags whose names start with prefix, each with
// the commit it names (an annotated tag peeled). Fetch first to see the
// remote's.
func (r *Repo) Tags(ctx context.Context, prefix string) (map[string]string, error) {
	out, err := r.git(ctx, "for-each-ref", "--format=%(refname)%00%(objectname)%00%(*objectname)", "refs/tags/"+prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("list tags %s*: %w", prefix, err)
	}
	tags := map[string]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\x00")
		if len(f) != 3 {
			continue
		}
		name := strings.TrimPrefix(f[0], "refs/tags/")
		tags[name] = cmp.Or(f[2], f[1])
	}
	return tags, nil
}

package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry"
)

func TestCreateTag(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHistory(t)
	r := fetched(t, h.up.bare)
	remoteTag := func(name string) (peeled, kind string) {
		out, err := gitEnvCmd(h.up.bare, nil, "for-each-ref", "--format=%(*objectname) %(objecttype)", "refs/tags/"+name).Output()
		if err != nil {
			t.Fatal(err)
		}
		p, k, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
		return p, k
	}

	notes := "RC20240301_1200: first release, 2 commits\n\n  abc second (Ada)\n  # not a comment\n"
	if err := r.CreateTagAs(ctx, "RC20240301_1200", h.c2, notes, "Grace Hopper <grace@example.com>"); err != nil {
		t.Fatalf("CreateTagAs = %v", err)
	}
	if p, k := remoteTag("RC20240301_1200"); p != h.c2 || k != "tag" {
		t.Fatalf("remote RC20240301_1200 = %q %q, want an annotated tag of %s", p, k, h.c2)
	}
	msg := gitIn(t, h.up.bare, "for-each-ref", "--format=%(contents)", "refs/tags/RC20240301_1200")
	if msg != strings.TrimSpace(notes) {
		t.Errorf("tag message = %q, want %q", msg, notes)
	}
	if who := gitIn(t, h.up.bare, "for-each-ref", "--format=%(taggername) %(taggeremail)", "refs/tags/RC20240301_1200"); who != "Grace Hopper <grace@example.com>" {
		t.Errorf("tagger = %q, want Grace Hopper <grace@example.com>", who)
	}
	if got, err := r.Tags(ctx, "RC"); err != nil || len(got) != 1 || got["RC20240301_1200"] != h.c2 {
		t.Errorf("Tags(RC) = %v, %v, want RC20240301_1200 peeled to %s", got, err, h.c2)
	}
	if got, err := r.ResolveTag(ctx, "RC20240301_1200"); err != nil || got != h.c2 {
		t.Errorf("cache ResolveTag(RC20240301_1200) = %.7s, %v, want %.7s", got, err, h.c2)
	}

	// Again, same commit: nothing to do, no error.
	if err := r.CreateTag(ctx, "RC20240301_1200", h.c2, "again"); err != nil {
		t.Errorf("CreateTag of an existing tag on the same commit = %v, want nil", err)
	}
	// Another commit: tags never move.
	if err := r.CreateTag(ctx, "RC20240301_1200", h.c1, "moved"); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("CreateTag moving a tag = %v, want ECONFLICT", err)
	}
	if p, _ := remoteTag("RC20240301_1200"); p != h.c2 {
		t.Errorf("remote RC20240301_1200 after a refused move = %.7s, want %.7s", p, h.c2)
	}

	// A tag made on the remote since the last fetch is not replaced either,
	// and the cache keeps no copy of the refused one.
	h.up.git("tag", "-a", "-m", "by hand", "RC20240302_0800", h.c1)
	h.up.push()
	if err := r.CreateTag(ctx, "RC20240302_0800", h.c2, "mine"); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("CreateTag over a remote tag = %v, want ECONFLICT", err)
	}
	if p, _ := remoteTag("RC20240302_0800"); p != h.c1 {
		t.Errorf("remote RC20240302_0800 = %.7s, want %.7s (unchanged)", p, h.c1)
	}
	if got, err := r.ResolveTag(ctx, "RC20240302_0800"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("cache ResolveTag(RC20240302_0800) = %.7s, %v: the cache keeps the refused tag", got, err)
	}
	// The same tag on the same commit already on the remote: idempotent.
	if err := r.CreateTag(ctx, "RC20240302_0800", h.c1, "mine"); err != nil {
		t.Errorf("CreateTag of a remote tag on the same commit = %v, want nil", err)
	}

	// A remote that refuses the push (a hook): an error, nothing cached.
	hook := filepath.Join(h.up.bare, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho 'no tags today' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := r.CreateTag(ctx, "RC20240303_1000", h.c2, "refused")
	if err == nil || !strings.Contains(err.Error(), "no tags today") {
		t.Errorf("CreateTag refused by the remote = %v, want an error with the hook's message", err)
	}
	if got, err := r.ResolveTag(ctx, "RC20240303_1000"); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("cache ResolveTag(RC20240303_1000) = %.7s, %v: the cache keeps a tag the remote refused", got, err)
	}

	for _, bad := range []struct{ name, commit string }{
		{"-RC", h.c1}, {"a b", h.c1}, {"x..y", h.c1}, {"", h.c1}, {"RC20240304_1000", "nope"}, {"RC20240304_1000", h.c1[:12]},
	} {
		if err := r.CreateTag(ctx, bad.name, bad.commit, "m"); ferry.ErrorCode(err) != ferry.EINVALID {
			t.Errorf("CreateTag(%q, %q) = %v, want EINVALID", bad.name, bad.commit, err)
		}
	}
}

func TestSplitIdentity(t *testing.T) {
	for _, tc := range []struct{ in, name, email string }{
		{"Ada Lovelace <ada@example.com>", "Ada Lovelace", "ada@example.com"},
		{"ferry", "ferry", "ferry@localhost"},
		{"Grace Hopper", "Grace Hopper", "grace.hopper@localhost"},
		{"", "ferry", "ferry@localhost"},
	} {
		if n, e := splitIdentity(tc.in); n != tc.name || e != tc.email {
			t.Errorf("splitIdentity(%q) = %q, %q, want %q, %q", tc.in, n, e, tc.name, tc.email)
		}
	}
}

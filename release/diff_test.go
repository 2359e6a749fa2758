package release

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/source"
)

func shas(cs []ferry.Commit) []string {
	var s []string
	for _, c := range cs {
		s = append(s, c.SHA)
	}
	return s
}

func TestDiff(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	cache := source.Open(r.bare, filepath.Join(t.TempDir(), "cache.git"), nil)
	if err := cache.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, from, to string
		ahead, behind  []string
	}{
		{"dev ahead of prod", r.m4, r.m2, []string{r.m4, r.m3}, nil},
		{"prod behind dev", r.m2, r.m4, nil, []string{r.m4, r.m3}},
		{"diverged", r.m4, r.f1, []string{r.m4, r.m3}, []string{r.f1}},
		{"same", r.m3, r.m3, nil, nil},
		{"to runs nothing", r.m2, "", []string{r.m2, r.m1}, nil},
		{"from runs nothing", "", r.m2, nil, []string{r.m2, r.m1}},
		{"neither runs anything", "", "", nil, nil},
	} {
		ahead, behind, err := Diff(t.Context(), cache, tc.from, tc.to)
		if err != nil || !slices.Equal(shas(ahead), tc.ahead) || !slices.Equal(shas(behind), tc.behind) {
			t.Errorf("%s: Diff(%.7s, %.7s) = %.7s, %.7s, %v, want %.7s, %.7s", tc.name, tc.from, tc.to, shas(ahead), shas(behind), err, tc.ahead, tc.behind)
		}
	}
	if _, _, err := Diff(t.Context(), cache, unknown, r.m1); err == nil {
		t.Errorf("Diff(unknown, m1) = nil error, want one")
	}

	c, err := Compare(t.Context(), cache, Side{Env: "dev", Commit: r.m4}, Side{Env: "prod", Commit: r.m2, Release: "RC20240301_1200"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Ahead) != 2 || c.Ahead[0].Commit != r.m4 || c.Ahead[0].Subject != "m4: fourth" || c.Ahead[0].Author != "Ada Lovelace" ||
		c.Ahead[0].AuthorEmail != "ada@example.com" || !c.Ahead[0].Time.Equal(time.Date(2024, 3, 1, 12, 5, 0, 0, time.UTC)) {
		t.Errorf("Compare(dev, prod).Ahead = %+v, want m4 then m3 with subject, author and time", c.Ahead)
	}
	data, _ := json.Marshal(c)
	for _, frag := range []string{`"from":{"env":"dev","commit":"` + r.m4 + `"}`, `"release":"RC20240301_1200"`, `"behind":[]`, `"subject":"m3: third"`} {
		if !strings.Contains(string(data), frag) {
			t.Errorf("Compare JSON = %s, want it to contain %s", data, frag)
		}
	}
}

func TestReleaseNotes(t *testing.T) {
	cs := []ferry.Commit{
		{SHA: strings.Repeat("1a2b", 10), Subject: "fix: birthdays on Feb 29", Author: "Ada Lovelace"},
		{SHA: strings.Repeat("9f8e", 10), Subject: "docs:\thow to run", Author: "Grace  Hopper"},
	}
	for _, tc := range []struct {
		name, tag, prev string
		commits         []ferry.Commit
		want            string
	}{
		{"since a release", "RC20240301_1200", "RC20240229_0900", cs,
			"RC20240301_1200: 2 commits since RC20240229_0900\n\n  1a2b1a2b1a2b fix: birthdays on Feb 29 (Ada Lovelace)\n  9f8e9f8e9f8e docs: how to run (Grace Hopper)\n"},
		{"first", "RC20240301_1200", "", cs[:1],
			"RC20240301_1200: first release, 1 commit\n\n  1a2b1a2b1a2b fix: birthdays on Feb 29 (Ada Lovelace)\n"},
		{"nothing new", "RC20240301_1200_2", "RC20240301_1200", nil, "RC20240301_1200_2: no new commits since RC20240301_1200\n"},
	} {
		if got := ReleaseNotes(tc.tag, tc.prev, tc.commits); got != tc.want {
			t.Errorf("%s: ReleaseNotes = %q, want %q", tc.name, got, tc.want)
		}
	}
	many := slices.Repeat(cs[:1], MaxNoteLines+5)
	got := ReleaseNotes("RC20240301_1200", "", many)
	if lines := strings.Count(got, "\n"); lines != MaxNoteLines+3 || !strings.HasSuffix(got, "  … and 5 more\n") {
		t.Errorf("ReleaseNotes of %d commits: %d lines ending %q, want %d ending with … and 5 more", len(many), lines, got[len(got)-40:], MaxNoteLines+3)
	}
}

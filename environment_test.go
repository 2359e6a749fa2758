package ferry

import (
	"slices"
	"testing"
	"time"
)

func TestReleaseName(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		tmpl, want, wantErr string
	}{
		{"", "RC20260102_0204", ""}, // the default, in UTC
		{`RC{{ .Time.UTC.Format "20060102_1504" }}`, "RC20260102_0204", ""},
		{`v{{ .Time.Year }}`, "v2026", ""},
		{`{{ .Branch }}`, "", `environment prod: release tag "" is not a valid tag`},
		{`a/{{ .Time.Year }}`, "", `environment prod: release tag "a/2026" is not a valid tag`},
		{`{{ .Nope }}`, "", `environment prod: bad template: executing "releaseTag" at <.Nope>: can't evaluate field Nope in type ferry.TemplateData`},
	} {
		e := &Environment{Name: "prod", ReleaseTag: tc.tmpl}
		got, err := e.ReleaseName(at)
		if got != tc.want || errString(err) != tc.wantErr {
			t.Errorf("ReleaseName(%q) = %q, %q; want %q, %q", tc.tmpl, got, errString(err), tc.want, tc.wantErr)
		}
	}
}

func TestMainline(t *testing.T) {
	chain := []Environment{{Name: "dev", Branch: "master"}, {Name: "staging", From: "dev"}, {Name: "prod", From: "staging", Branch: "release"}}
	for _, tc := range []struct {
		envs []Environment
		env  string
		want string
	}{
		{chain, "dev", "master"},
		{chain, "staging", "master"},
		{chain, "prod", "master"},
		{chain, "nope", ""},
		{[]Environment{{Name: "prod", From: "gone"}}, "prod", ""},
		{[]Environment{{Name: "a", From: "b"}, {Name: "b", From: "a"}}, "a", ""}, // a loop ends
	} {
		if got := Mainline(tc.envs, tc.env); got != tc.want {
			t.Errorf("Mainline(%v, %s) = %q, want %q", tc.envs, tc.env, got, tc.want)
		}
	}
}

func TestProduction(t *testing.T) {
	for _, tc := range []struct {
		envs []Environment
		want []string
	}{
		{nil, []string{}},
		{[]Environment{{Name: "dev"}}, []string{}}, // nothing gated: no production
		{[]Environment{{Name: "dev"}, {Name: "prod", From: "dev"}}, []string{"prod"}},
		{[]Environment{{Name: "dev"}, {Name: "staging", From: "dev"}, {Name: "prod", From: "staging"}}, []string{"prod"}},
		{[]Environment{{Name: "prod", From: "staging"}, {Name: "dev"}, {Name: "eu", From: "dev"}, {Name: "staging", From: "dev"}}, []string{"prod", "eu"}},
	} {
		if got := Production(tc.envs); !slices.Equal(got, tc.want) || got == nil {
			t.Errorf("Production(%v) = %#v, want %#v", tc.envs, got, tc.want)
		}
	}
}

func TestRolloutWithDefaults(t *testing.T) {
	for _, tc := range []struct {
		in, want Rollout
	}{
		// A zero grace period is the configuration's `grace: 0s`: kept.
		{Rollout{}, Rollout{MaxSurge: 1, ReadyTimeout: DefaultReadyTimeout}},
		{Rollout{MaxUnavailable: 1, ReadyTimeout: time.Second, Grace: time.Second},
			Rollout{MaxUnavailable: 1, ReadyTimeout: time.Second, Grace: time.Second}},
		{Rollout{MaxSurge: -3, MaxUnavailable: -1, Grace: -time.Second}, Rollout{MaxSurge: 1, ReadyTimeout: DefaultReadyTimeout}},
	} {
		if got := tc.in.WithDefaults(); got != tc.want {
			t.Errorf("%+v.WithDefaults() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestNewStatus(t *testing.T) {
	a, b := "sha256:aa", "sha256:bb"
	for _, tc := range []struct {
		name       string
		replicas   []Replica
		wantDigest string
		wantReady  int
	}{
		{"none", nil, "", 0},
		{"one digest", []Replica{{Digest: a, Ready: true}, {Digest: a}}, a, 1},
		{"mid-rollout", []Replica{{Digest: a, Ready: true}, {Digest: b, Ready: true}}, "", 2},
		{"differs last", []Replica{{Digest: a}, {Digest: a}, {Digest: b}}, "", 0},
	} {
		st := NewStatus(3, tc.replicas)
		if st.Digest != tc.wantDigest || st.Ready != tc.wantReady || st.Desired != 3 || len(st.Replicas) != len(tc.replicas) {
			t.Errorf("NewStatus(3, %s) = %+v, want digest %q, ready %d, desired 3", tc.name, st, tc.wantDigest, tc.wantReady)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestIsReleaseTag(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"RC20240301_1200", true},
		{"RC20240301_1200_2", true},
		{"RC20240301_1200_17", true},
		{"RC20240301_120", false},
		{"RC2024030_1200", false},
		{"RC20240301-1200", false},
		{"RC20240301_1200_", false},
		{"RC20240301_1200_x", false},
		{"rc20240301_1200", false},
		{"xRC20240301_1200", false},
		{"v1", false},
		{"", false},
	} {
		if got := IsReleaseTag(tc.name); got != tc.want {
			t.Errorf("IsReleaseTag(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

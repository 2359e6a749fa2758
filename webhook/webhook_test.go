package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry"
)

var secret = []byte("It's a Secret to Everybody")

func load(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// delivery is what a provider sends: headers and body.
type delivery struct {
	h    http.Header
	body []byte
}

func github(event string, body []byte, key []byte) delivery {
	return delivery{hdr("Content-Type", "application/json", "X-GitHub-Event", event,
		"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		"X-GitHub-Hook-ID", "471207135", "User-Agent", "GitHub-Hookshot/044aadd",
		"X-Hub-Signature", "sha1=0000000000000000000000000000000000000000", // legacy, ignored
		"X-Hub-Signature-256", "sha256="+sign(key, body)), body}
}

func gitlab(event string, body []byte, token string) delivery {
	return delivery{hdr("Content-Type", "application/json", "X-Gitlab-Event", event,
		"X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e",
		"X-Gitlab-Instance", "https://gitlab.example.com", "User-Agent", "GitLab/16.9.0",
		"X-Gitlab-Token", token), body}
}

// gitea sends what Gitea's deliverer sends: the same HMAC in three headers.
func gitea(event string, body []byte, key []byte) delivery {
	s := sign(key, body)
	return delivery{hdr("Content-Type", "application/json", "X-Gitea-Event", event, "X-Gitea-Event-Type", event,
		"X-Gitea-Delivery", "b0a9c8d4-4d1f-4d3e-9c1c-0e6f1f2a3b4c", "X-Gogs-Event", event,
		"X-Gitea-Signature", s, "X-Gogs-Signature", s, "X-Hub-Signature-256", "sha256="+s,
		"X-GitHub-Event", event), body}
}

func generic(body []byte, key []byte) delivery {
	return delivery{hdr("Content-Type", "application/json", "X-Ferry-Signature", "sha256="+sign(key, body)), body}
}

// with returns d with headers changed ("" deletes).
func (d delivery) with(kv ...string) delivery {
	h := d.h.Clone()
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			h.Del(kv[i])
		} else {
			h.Set(kv[i], kv[i+1])
		}
	}
	return delivery{h, d.body}
}

// form returns a form-encoded delivery of payload with headers from d.
func form(d delivery, payload []byte) delivery {
	h := d.h.Clone()
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return delivery{h, []byte(url.Values{"payload": {string(payload)}}.Encode())}
}

type parseCase struct {
	name     string
	provider string
	d        delivery
	noSecret bool   // configured with an empty secret (run with nil and with [])
	want     *Push  // nil when an error is expected
	code     string // the error's ferry code
	msg      string // a substring of the error message
}

func parseCases(t *testing.T) []parseCase {
	ghPush := load(t, "github-push.json")
	glPush := load(t, "gitlab-push.json")
	gtPush := load(t, "gitea-push.json")
	const ghID, glID, gtID = "72d3162e-cc78-11e3-81ab-4c9367dc0958", "13792a34-cac6-4fda-95a8-c58e00a3954e", "b0a9c8d4-4d1f-4d3e-9c1c-0e6f1f2a3b4c"
	ghWant := &Push{Provider: GitHub, Event: "push", Delivery: ghID, Repo: "https://github.com/ferryhq/birthday-app.git",
		Branch: "master", Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", After: "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5", Pusher: "ada"}
	glWant := &Push{Provider: GitLab, Event: "Push Hook", Delivery: glID, Repo: "https://gitlab.example.com/team/birthday-app.git",
		Branch: "master", Before: "95790bf891e76fee5e1747ab589903a6a1f80f22", After: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Pusher: "jsmith"}
	gtWant := &Push{Provider: Gitea, Event: "push", Delivery: gtID, Repo: "https://gitea.example.com/team/birthday-app.git",
		Branch: "master", Before: "28e1879d029cb852e4844d9c718537df08844e03", After: "bffeb74224043ba2feb48d137756c8a9331c449a", Pusher: "ada"}
	with := func(p *Push, f func(*Push)) *Push { c := *p; f(&c); return &c }
	const sha = "2f4bd0f3c0a4cd3d1d5b1c09b0ef8e5e4f2e7c51"
	gen := func(s string) delivery { return generic([]byte(s), secret) }
	truncated := ghPush[:len(ghPush)/2]
	wrong := []byte("not the secret")

	return []parseCase{
		// GitHub
		{name: "github push", provider: GitHub, d: github("push", ghPush, secret), want: ghWant},
		{name: "github form-encoded push", provider: GitHub, d: func() delivery {
			f := form(github("push", ghPush, secret), ghPush)
			return f.with("X-Hub-Signature-256", "sha256="+sign(secret, f.body)) // GitHub signs the body as sent
		}(), want: ghWant},
		{name: "github new branch", provider: GitHub, d: github("push", load(t, "github-push-new-branch.json"), secret),
			want: with(ghWant, func(p *Push) { p.Branch, p.Before = "release", zeroSHA })},
		{name: "github uppercase signature hex", provider: GitHub, d: github("push", ghPush, secret).with("X-Hub-Signature-256", "sha256="+strings.ToUpper(sign(secret, ghPush))), want: ghWant},
		{name: "github ping", provider: GitHub, d: github("ping", load(t, "github-ping.json"), secret),
			want: &Push{Provider: GitHub, Event: "ping", Delivery: ghID, Ignore: "ping"}},
		{name: "github tag push", provider: GitHub, d: github("push", load(t, "github-push-tag.json"), secret),
			want: &Push{Provider: GitHub, Event: "push", Delivery: ghID, Repo: ghWant.Repo, Pusher: "ada", Ignore: "tag push (v1.2.0)"}},
		{name: "github branch deleted", provider: GitHub, d: github("push", load(t, "github-push-delete.json"), secret),
			want: &Push{Provider: GitHub, Event: "push", Delivery: ghID, Repo: ghWant.Repo, Pusher: "ada", Branch: "feature/lang",
				Before: ghWant.After, Deleted: true, Ignore: "branch deleted"}},
		{name: "github other event", provider: GitHub, d: github("issues", []byte(`{"action":"opened"}`), secret),
			want: &Push{Provider: GitHub, Event: "issues", Delivery: ghID, Ignore: `event "issues" is not a push`}},
		{name: "github missing signature", provider: GitHub, d: github("push", ghPush, secret).with("X-Hub-Signature-256", ""),
			code: ferry.EUNAUTHORIZED, msg: "missing X-Hub-Signature-256 header"},
		{name: "github sha1 only", provider: GitHub, d: github("push", ghPush, secret).with("X-Hub-Signature-256", "", "X-Hub-Signature", "sha1="+sign(secret, ghPush)[:40]),
			code: ferry.EUNAUTHORIZED, msg: "missing X-Hub-Signature-256 header"},
		{name: "github wrong secret", provider: GitHub, d: github("push", ghPush, wrong), code: ferry.EUNAUTHORIZED, msg: "X-Hub-Signature-256 does not match"},
		{name: "github signature of another body", provider: GitHub, d: delivery{github("push", load(t, "github-push-tag.json"), secret).h, ghPush},
			code: ferry.EUNAUTHORIZED, msg: "does not match"},
		{name: "github unprefixed signature", provider: GitHub, d: github("push", ghPush, secret).with("X-Hub-Signature-256", sign(secret, ghPush)),
			code: ferry.EUNAUTHORIZED, msg: `is not "sha256=" followed by 64 hex digits`},
		{name: "github short signature", provider: GitHub, d: github("push", ghPush, secret).with("X-Hub-Signature-256", "sha256=abcd"),
			code: ferry.EUNAUTHORIZED, msg: "64 hex digits"},
		{name: "github empty secret", provider: GitHub, d: github("push", ghPush, nil), noSecret: true,
			code: ferry.EUNAUTHORIZED, msg: "no webhook secret is configured for github"},
		{name: "github truncated JSON", provider: GitHub, d: github("push", truncated, secret), code: ferry.EINVALID, msg: "malformed github payload"},
		{name: "github empty body", provider: GitHub, d: github("push", nil, secret), code: ferry.EINVALID, msg: "empty body"},
		{name: "github wrong JSON type", provider: GitHub, d: github("push", []byte(`{"ref":["refs/heads/master"]}`), secret), code: ferry.EINVALID, msg: "field ref"},
		{name: "github missing event", provider: GitHub, d: github("", ghPush, secret).with("X-GitHub-Event", ""), code: ferry.EINVALID, msg: "missing X-GitHub-Event header"},
		{name: "github pull ref", provider: GitHub, d: github("push", []byte(`{"ref":"refs/pull/7/head","after":"`+sha+`"}`), secret),
			code: ferry.EINVALID, msg: `ref "refs/pull/7/head" is not a branch`},
		{name: "github no ref", provider: GitHub, d: github("push", []byte(`{"after":"`+sha+`"}`), secret), code: ferry.EINVALID, msg: "has no ref"},
		{name: "github short after", provider: GitHub, d: github("push", []byte(`{"ref":"refs/heads/master","after":"59b20b8"}`), secret),
			code: ferry.EINVALID, msg: `after "59b20b8" is not a 40-hex commit id`},
		{name: "github form without payload", provider: GitHub, d: func() delivery {
			body := []byte("data=x")
			return github("push", body, secret).with("Content-Type", "application/x-www-form-urlencoded")
		}(), code: ferry.EINVALID, msg: "without a payload field"},

		// GitLab
		{name: "gitlab push", provider: GitLab, d: gitlab("Push Hook", glPush, string(secret)), want: glWant},
		{name: "gitlab push with Idempotency-Key", provider: GitLab, d: gitlab("Push Hook", glPush, string(secret)).with("Idempotency-Key", "908a6d9e-45fd-46c8-97e6-c4f350f219dd"),
			want: with(glWant, func(p *Push) { p.Delivery = "908a6d9e-45fd-46c8-97e6-c4f350f219dd" })}, // the same on every retry
		{name: "gitlab system hook push", provider: GitLab, d: gitlab("System Hook", load(t, "gitlab-system-push.json"), string(secret)),
			want: with(glWant, func(p *Push) { p.Event, p.Branch = "System Hook", "release" })},
		{name: "gitlab system hook repository_update", provider: GitLab, d: gitlab("System Hook", load(t, "gitlab-system-repository-update.json"), string(secret)),
			want: &Push{Provider: GitLab, Event: "System Hook", Delivery: glID, Ignore: `System Hook "repository_update" is not a push`}},
		{name: "gitlab tag push", provider: GitLab, d: gitlab("Tag Push Hook", load(t, "gitlab-tag-push.json"), string(secret)),
			want: &Push{Provider: GitLab, Event: "Tag Push Hook", Delivery: glID, Ignore: "tag push (v1.0.0)"}},
		{name: "gitlab branch deleted", provider: GitLab, d: gitlab("Push Hook", load(t, "gitlab-push-delete.json"), string(secret)),
			want: with(glWant, func(p *Push) {
				p.Branch, p.Before, p.After, p.Deleted, p.Ignore = "feature/lang", glWant.After, "", true, "branch deleted"
			})},
		{name: "gitlab merge request", provider: GitLab, d: gitlab("Merge Request Hook", []byte(`{"object_kind":"merge_request"}`), string(secret)),
			want: &Push{Provider: GitLab, Event: "Merge Request Hook", Delivery: glID, Ignore: `event "Merge Request Hook" is not a push`}},
		{name: "gitlab missing token", provider: GitLab, d: gitlab("Push Hook", glPush, ""), code: ferry.EUNAUTHORIZED, msg: "missing X-Gitlab-Token header"},
		{name: "gitlab wrong token", provider: GitLab, d: gitlab("Push Hook", glPush, "It's a Secret to Everybody!"), code: ferry.EUNAUTHORIZED, msg: "X-Gitlab-Token does not match"},
		{name: "gitlab token prefix", provider: GitLab, d: gitlab("Push Hook", glPush, "It's a Secret"), code: ferry.EUNAUTHORIZED, msg: "does not match"},
		{name: "gitlab empty secret", provider: GitLab, d: gitlab("Push Hook", glPush, ""), noSecret: true, code: ferry.EUNAUTHORIZED, msg: "no webhook secret"},
		{name: "gitlab truncated JSON", provider: GitLab, d: gitlab("Push Hook", glPush[:100], string(secret)), code: ferry.EINVALID, msg: "malformed gitlab payload"},
		{name: "gitlab missing event", provider: GitLab, d: gitlab("", glPush, string(secret)).with("X-Gitlab-Event", ""), code: ferry.EINVALID, msg: "missing X-Gitlab-Event"},

		// Gitea and Forgejo
		{name: "gitea push", provider: Gitea, d: gitea("push", gtPush, secret), want: gtWant},
		{name: "forgejo push", provider: Gitea, d: delivery{hdr("Content-Type", "application/json", "X-Forgejo-Event", "push",
			"X-Forgejo-Delivery", gtID, "X-Forgejo-Signature", sign(secret, gtPush)), gtPush}, want: gtWant},
		{name: "gitea hub signature only", provider: Gitea, d: gitea("push", gtPush, secret).with("X-Gitea-Signature", "", "X-Gogs-Signature", ""), want: gtWant},
		{name: "gitea form-encoded push", provider: Gitea, d: form(gitea("push", gtPush, secret), gtPush), want: gtWant}, // Gitea signs the JSON, not the form
		{name: "gitea tag push", provider: Gitea, d: gitea("push", load(t, "gitea-push-tag.json"), secret),
			want: &Push{Provider: Gitea, Event: "push", Delivery: gtID, Repo: gtWant.Repo, Pusher: "ada", Ignore: "tag push (v1.0.0)"}},
		{name: "gitea zero after", provider: Gitea, d: gitea("push", load(t, "gitea-push-delete.json"), secret),
			want: with(gtWant, func(p *Push) {
				p.Branch, p.Before, p.After, p.Deleted, p.Ignore = "feature/lang", gtWant.After, "", true, "branch deleted"
			})},
		{name: "gitea delete event", provider: Gitea, d: gitea("delete", load(t, "gitea-delete.json"), secret),
			want: &Push{Provider: Gitea, Event: "delete", Delivery: gtID, Ignore: `event "delete" is not a push`}},
		{name: "gitea missing signature", provider: Gitea, d: gitea("push", gtPush, secret).with("X-Gitea-Signature", "", "X-Gogs-Signature", "", "X-Hub-Signature-256", ""),
			code: ferry.EUNAUTHORIZED, msg: "missing X-Gitea-Signature header"},
		{name: "gitea one bad signature of three", provider: Gitea, d: gitea("push", gtPush, secret).with("X-Gogs-Signature", sign(wrong, gtPush)),
			code: ferry.EUNAUTHORIZED, msg: "X-Gogs-Signature does not match"},
		{name: "gitea wrong secret", provider: Gitea, d: gitea("push", gtPush, wrong), code: ferry.EUNAUTHORIZED, msg: "X-Gitea-Signature does not match"},
		{name: "gitea prefixed signature", provider: Gitea, d: gitea("push", gtPush, secret).with("X-Gitea-Signature", "sha256="+sign(secret, gtPush)),
			code: ferry.EUNAUTHORIZED, msg: "X-Gitea-Signature header is not 64 hex digits"},
		{name: "gitea empty secret", provider: Gitea, d: gitea("push", gtPush, nil), noSecret: true, code: ferry.EUNAUTHORIZED, msg: "no webhook secret"},
		{name: "gitea missing event", provider: Gitea, d: gitea("push", gtPush, secret).with("X-Gitea-Event", "", "X-Gogs-Event", ""), code: ferry.EINVALID, msg: "missing X-Gitea-Event"},
		{name: "gitea truncated JSON", provider: Gitea, d: gitea("push", gtPush[:len(gtPush)-2], secret), code: ferry.EINVALID, msg: "malformed gitea payload"},

		// Generic
		{name: "generic ref and after", provider: Generic, d: generic(load(t, "generic-ref.json"), secret),
			want: &Push{Provider: Generic, Event: "push", Branch: "master", After: sha}},
		{name: "generic branch and commit", provider: Generic, d: generic(load(t, "generic-branch.json"), secret).with("X-Ferry-Delivery", "d-1"),
			want: &Push{Provider: Generic, Event: "push", Delivery: "d-1", Repo: "https://git.example.com/team/birthday-app.git", Branch: "master", After: sha, Pusher: "ci-bot"}},
		{name: "generic uppercase commit", provider: Generic, d: gen(`{"branch":"release/2024.03","commit":"` + strings.ToUpper(sha) + `"}`),
			want: &Push{Provider: Generic, Event: "push", Branch: "release/2024.03", After: sha}},
		{name: "generic tag", provider: Generic, d: gen(`{"ref":"refs/tags/v1","after":"` + sha + `"}`),
			want: &Push{Provider: Generic, Event: "push", Ignore: "tag push (v1)"}},
		{name: "generic deleted", provider: Generic, d: gen(`{"branch":"old","commit":"` + zeroSHA + `"}`),
			want: &Push{Provider: Generic, Event: "push", Branch: "old", Deleted: true, Ignore: "branch deleted"}},
		{name: "generic no commit", provider: Generic, d: gen(`{"branch":"master"}`), code: ferry.EINVALID, msg: "has no commit"},
		{name: "generic bad branch", provider: Generic, d: gen(`{"branch":"../etc","commit":"` + sha + `"}`), code: ferry.EINVALID, msg: "is not a branch"},
		{name: "generic ref and branch disagree", provider: Generic, d: gen(`{"ref":"refs/heads/a","branch":"b","commit":"` + sha + `"}`), code: ferry.EINVALID, msg: "disagree"},
		{name: "generic trailing data", provider: Generic, d: gen(`{"branch":"a","commit":"` + sha + `"} {}`), code: ferry.EINVALID, msg: "data after the JSON object"},
		{name: "generic not JSON", provider: Generic, d: gen(`branch=master`), code: ferry.EINVALID, msg: "malformed generic payload"},
		{name: "generic missing signature", provider: Generic, d: gen(`{}`).with("X-Ferry-Signature", ""), code: ferry.EUNAUTHORIZED, msg: "missing X-Ferry-Signature header"},
		{name: "generic GitHub-style header", provider: Generic, d: gen(`{}`).with("X-Ferry-Signature", "", "X-Hub-Signature-256", "sha256="+sign(secret, []byte(`{}`))),
			code: ferry.EUNAUTHORIZED, msg: "missing X-Ferry-Signature header"},
		{name: "generic wrong secret", provider: Generic, d: generic(load(t, "generic-ref.json"), wrong), code: ferry.EUNAUTHORIZED, msg: "does not match"},
		{name: "generic nil secret", provider: Generic, d: generic(load(t, "generic-ref.json"), nil), noSecret: true, code: ferry.EUNAUTHORIZED, msg: "no webhook secret"},

		{name: "unknown provider", provider: "bitbucket", d: github("push", ghPush, secret), code: ferry.ENOTFOUND, msg: `unknown webhook provider "bitbucket"`},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			keys := [][]byte{secret}
			if tc.noSecret {
				keys = [][]byte{nil, {}}
			}
			for _, key := range keys {
				checkParse(t, tc, key)
			}
		})
	}
}

func checkParse(t *testing.T, tc parseCase, key []byte) {
	t.Helper()
	got, err := Parse(tc.provider, tc.d.h, tc.d.body, key)
	if tc.want != nil {
		if err != nil || *got != *tc.want {
			t.Fatalf("Parse(%s) = %+v, %v\nwant %+v", tc.provider, got, err, *tc.want)
		}
		return
	}
	if got != nil || ferry.ErrorCode(err) != tc.code || !strings.Contains(ferry.ErrorMessage(err), tc.msg) {
		t.Fatalf("Parse(%s) = %+v, %v; want %s error containing %q", tc.provider, got, err, tc.code, tc.msg)
	}
	// Never show what the signature should have been, nor the secret.
	for _, b := range [][]byte{tc.d.body, []byte(url.Values{"payload": {string(tc.d.body)}}.Encode())} {
		if want := sign(secret, b); strings.Contains(strings.ToLower(err.Error()), want) {
			t.Errorf("error %q shows the expected signature", err)
		}
	}
	if strings.Contains(err.Error(), string(secret)) {
		t.Errorf("error %q shows the secret", err)
	}
}

func TestValidBranch(t *testing.T) {
	for _, tc := range []struct {
		b    string
		want bool
	}{
		{"master", true}, {"feature/lang", true}, {"release/2024.03", true}, {"ümlaut", true},
		{"", false}, {"HEAD", false}, {"-x", false}, {"a..b", false}, {"a b", false}, {"a:b", false},
		{"a/", false}, {"/a", false}, {"a.lock", false}, {"a//b", false}, {"a@{1}", false}, {"a\x00b", false}, {"a.", false},
	} {
		if got := validBranch(tc.b); got != tc.want {
			t.Errorf("validBranch(%q) = %v, want %v", tc.b, got, tc.want)
		}
	}
}

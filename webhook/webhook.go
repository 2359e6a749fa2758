// Package webhook authenticates and reads the push notifications that git
// hosting services send, so that a push builds at once instead of at the
// next poll.
//
// Four senders are understood, each with its own payload and signature
// scheme, as the services document them:
//
//   - github: X-Hub-Signature-256 "sha256=<hex HMAC-SHA256 of the body>",
//     X-GitHub-Event (push; ping is acknowledged), X-GitHub-Delivery;
//     a JSON or form-encoded ("payload=…") body.
//   - gitlab: X-Gitlab-Token equal to the secret, X-Gitlab-Event (Push Hook,
//     or System Hook with object_kind push), Idempotency-Key (the same on
//     every retry, GitLab 17.4 and later) or else X-Gitlab-Event-UUID.
//   - gitea (and Forgejo, Gogs): X-Gitea-Signature or X-Forgejo-Signature
//     "<hex HMAC-SHA256 of the JSON payload>", or X-Hub-Signature-256, all
//     of which Gitea sends; X-Gitea-Event / X-Forgejo-Event,
//     X-Gitea-Delivery / X-Forgejo-Delivery / X-Gogs-Delivery.
//   - generic: X-Ferry-Signature "sha256=<hex HMAC-SHA256 of the body>",
//     X-Ferry-Delivery (optional: an id the sender keeps on retries), and
//     {"ref":"refs/heads/B","after":"<sha>"} or {"branch":"B","commit":"<sha>"}.
//
// The delivery id (Push.Delivery) is what Handler deduplicates by.
//
// Every delivery must be authenticated: an empty secret refuses them all.
// Parse checks the signature before it interprets the payload.
// Deliveries that need no build — pings, tag pushes, branch deletions,
// other events — are not errors: the Push says why in Ignore.
package webhook

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/ferryhq/ferry"
)

// Providers understood by Parse and Handler.
const (
	GitHub  = "github"
	GitLab  = "gitlab"
	Gitea   = "gitea"
	Generic = "generic"
)

// Push is one authenticated delivery.
type Push struct {
	Provider string `json:"provider"`
	Event    string `json:"event"`              // as the sender names it: push, Push Hook, ping, …
	Delivery string `json:"delivery,omitempty"` // the sender's delivery id: the same on a retry or replay
	Repo     string `json:"repo,omitempty"`     // clone URL, or the repository's name
	Branch   string `json:"branch,omitempty"`
	Before   string `json:"before,omitempty"` // may be all zeros for a new branch
	After    string `json:"after,omitempty"`  // the new head; empty when Deleted
	Deleted  bool   `json:"deleted,omitempty"`
	Pusher   string `json:"pusher,omitempty"`
	// Ignore says why this delivery asks for nothing to be built (a ping,
	// a tag push, a deleted branch, another event); empty for a push to
	// build.
	Ignore string `json:"ignore,omitempty"`
}

const zeroSHA = "0000000000000000000000000000000000000000"

// Parse authenticates a delivery from provider with secret and reads it.
// Errors are *ferry.Error: EUNAUTHORIZED when the secret is empty or the
// signature is missing or wrong (the message names the header, never the
// expected value), EINVALID for a malformed delivery or a ref that is not
// a branch, ENOTFOUND for an unknown provider.
func Parse(provider string, h http.Header, body, secret []byte) (*Push, error) {
	switch provider {
	case GitHub, GitLab, Gitea, Generic:
	default:
		return nil, ferry.Errorf(ferry.ENOTFOUND, "unknown webhook provider %q (want github, gitlab, gitea or generic)", provider)
	}
	if len(secret) == 0 {
		return nil, ferry.Errorf(ferry.EUNAUTHORIZED, "no webhook secret is configured for %s: unauthenticated webhooks are refused", provider)
	}
	var err error
	switch provider {
	case GitHub:
		err = checkHMAC(h, secret, "X-Hub-Signature-256", "sha256=", body)
	case GitLab:
		err = checkToken(h, secret)
	case Gitea:
		// Gitea signs the JSON payload, which for a form-encoded delivery
		// is not the body; either is accepted.
		signed := [][]byte{body}
		if pl, err := payloadOf(h, body); err == nil && !bytes.Equal(pl, body) {
			signed = append(signed, pl)
		}
		err = checkGitea(h, secret, signed)
	case Generic:
		err = checkHMAC(h, secret, "X-Ferry-Signature", "sha256=", body)
	}
	if err != nil {
		return nil, err
	}
	// Authenticated: now the payload may be read.
	payload, err := payloadOf(h, body)
	if err != nil {
		return nil, err
	}
	var p *Push
	switch provider {
	case GitHub:
		p, err = parseGitHub(h, payload)
	case GitLab:
		p, err = parseGitLab(h, payload)
	case Gitea:
		p, err = parseGitea(h, payload)
	case Generic:
		p, err = parseGeneric(h, payload)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// payloadOf returns the JSON document of a delivery: the body, or the
// "payload" field of a form-encoded body (GitHub and Gitea can send either).
func payloadOf(h http.Header, body []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || !form.Has("payload") {
		return nil, ferry.Errorf(ferry.EINVALID, "form-encoded webhook without a payload field")
	}
	return []byte(form.Get("payload")), nil
}

// checkHMAC verifies header = prefix + hex(HMAC-SHA256(secret, signed)).
func checkHMAC(h http.Header, secret []byte, header, prefix string, signed ...[]byte) error {
	v := h.Get(header)
	if v == "" {
		return ferry.Errorf(ferry.EUNAUTHORIZED, "missing %s header", header)
	}
	hexSig, ok := strings.CutPrefix(v, prefix)
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil || len(got) != sha256.Size {
		if prefix == "" {
			return ferry.Errorf(ferry.EUNAUTHORIZED, "%s header is not 64 hex digits", header)
		}
		return ferry.Errorf(ferry.EUNAUTHORIZED, "%s header is not %q followed by 64 hex digits", header, prefix)
	}
	for _, b := range signed {
		mac := hmac.New(sha256.New, secret)
		mac.Write(b)
		if hmac.Equal(got, mac.Sum(nil)) {
			return nil
		}
	}
	return ferry.Errorf(ferry.EUNAUTHORIZED, "%s does not match the payload (is the secret the same on both sides?)", header)
}

// checkToken compares GitLab's token with the secret in constant time,
// hashing both first so that not even the length leaks.
func checkToken(h http.Header, secret []byte) error {
	v := h.Get("X-Gitlab-Token")
	if v == "" {
		return ferry.Errorf(ferry.EUNAUTHORIZED, "missing X-Gitlab-Token header")
	}
	a, b := sha256.Sum256([]byte(v)), sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return ferry.Errorf(ferry.EUNAUTHORIZED, "X-Gitlab-Token does not match the configured secret")
	}
	return nil
}

// checkGitea verifies every signature header Gitea or Forgejo sent (each
// over one of signed); at least one must be present.
func checkGitea(h http.Header, secret []byte, signed [][]byte) error {
	headers := []struct{ name, prefix string }{
		{"X-Gitea-Signature", ""},
		{"X-Forgejo-Signature", ""},
		{"X-Gogs-Signature", ""},
		{"X-Hub-Signature-256", "sha256="},
	}
	found := false
	for _, s := range headers {
		if h.Get(s.name) == "" {
			continue
		}
		found = true
		if err := checkHMAC(h, secret, s.name, s.prefix, signed...); err != nil {
			return err
		}
	}
	if !found {
		return ferry.Errorf(ferry.EUNAUTHORIZED, "missing X-Gitea-Signature header (or X-Forgejo-Signature, X-Hub-Signature-256)")
	}
	return nil
}

func decode(provider string, payload []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(payload))
	if err := d.Decode(v); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return ferry.Errorf(ferry.EINVALID, "malformed %s payload: field %s is a JSON %s", provider, te.Field, te.Value)
		}
		if errors.Is(err, io.EOF) {
			return ferry.Errorf(ferry.EINVALID, "malformed %s payload: empty body", provider)
		}
		return ferry.Wrap(err, ferry.EINVALID, "malformed %s payload: not valid JSON", provider)
	}
	if d.More() {
		return ferry.Errorf(ferry.EINVALID, "malformed %s payload: data after the JSON object", provider)
	}
	return nil
}

// refUpdate fills in branch, before, after and deleted from a push's ref
// and commit ids, or sets Ignore for tags.
func (p *Push) refUpdate(ref, before, after string, deleted bool) error {
	switch {
	case ref == "":
		return ferry.Errorf(ferry.EINVALID, "%s push has no ref", p.Provider)
	case strings.HasPrefix(ref, "refs/tags/"):
		p.Ignore = "tag push (" + strings.TrimPrefix(ref, "refs/tags/") + ")"
		return nil
	}
	branch, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok || !validBranch(branch) {
		return ferry.Errorf(ferry.EINVALID, "%s push: ref %q is not a branch", p.Provider, ref)
	}
	p.Branch = branch
	before, after = strings.ToLower(before), strings.ToLower(after)
	if before != "" && !ferry.ValidCommit(before) {
		return ferry.Errorf(ferry.EINVALID, "%s push: before %q is not a 40-hex commit id", p.Provider, before)
	}
	p.Before = before
	if deleted || after == zeroSHA {
		p.Deleted = true
		p.Ignore = "branch deleted"
		return nil
	}
	if !ferry.ValidCommit(after) {
		return ferry.Errorf(ferry.EINVALID, "%s push: after %q is not a 40-hex commit id", p.Provider, after)
	}
	p.After = after
	return nil
}

// validBranch accepts the branch names git does (a practical subset of
// git check-ref-format).
func validBranch(b string) bool {
	if b == "" || b == "HEAD" || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") ||
		strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".lock") || strings.HasSuffix(b, ".") ||
		strings.Contains(b, "..") || strings.Contains(b, "//") || strings.Contains(b, "@{") {
		return false
	}
	for _, r := range b {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	return true
}

// githubPush is the part of GitHub's push payload that ferry reads.
type githubPush struct {
	Ref        string `json:"ref"`
	Before     string `json:"before"`
	After      string `json:"after"`
	Deleted    bool   `json:"deleted"`
	Repository struct {
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
		FullName string `json:"full_name"`
	} `json:"repository"`
	HeadCommit *struct {
		ID string `json:"id"`
	} `json:"head_commit"`
	Pusher struct {
		Name string `json:"name"`
	} `json:"pusher"`
}

func parseGitHub(h http.Header, payload []byte) (*Push, error) {
	p := &Push{Provider: GitHub, Event: h.Get("X-GitHub-Event"), Delivery: h.Get("X-GitHub-Delivery")}
	switch p.Event {
	case "":
		return nil, ferry.Errorf(ferry.EINVALID, "missing X-GitHub-Event header")
	case "ping":
		p.Ignore = "ping"
		return p, nil
	case "push":
	default:
		p.Ignore = fmt.Sprintf("event %q is not a push", p.Event)
		return p, nil
	}
	var v githubPush
	if err := decode(GitHub, payload, &v); err != nil {
		return nil, err
	}
	p.Repo = cmp.Or(v.Repository.CloneURL, v.Repository.HTMLURL, v.Repository.FullName)
	p.Pusher = v.Pusher.Name
	if err := p.refUpdate(v.Ref, v.Before, v.After, v.Deleted); err != nil {
		return nil, err
	}
	return p, nil
}

// gitlabPush is the part of GitLab's push payload that ferry reads; system
// hooks send the same document.
type gitlabPush struct {
	ObjectKind   string `json:"object_kind"`
	EventName    string `json:"event_name"`
	Ref          string `json:"ref"`
	Before       string `json:"before"`
	After        string `json:"after"`
	CheckoutSHA  string `json:"checkout_sha"`
	UserName     string `json:"user_name"`
	UserUsername string `json:"user_username"`
	Project      struct {
		GitHTTPURL        string `json:"git_http_url"`
		WebURL            string `json:"web_url"`
		PathWithNamespace string `json:"path_with_namespace"`
	} `json:"project"`
	Repository struct {
		GitHTTPURL string `json:"git_http_url"`
	} `json:"repository"`
}

func parseGitLab(h http.Header, payload []byte) (*Push, error) {
	p := &Push{Provider: GitLab, Event: h.Get("X-Gitlab-Event"), Delivery: cmp.Or(h.Get("Idempotency-Key"), h.Get("X-Gitlab-Event-UUID"))}
	switch p.Event {
	case "":
		return nil, ferry.Errorf(ferry.EINVALID, "missing X-Gitlab-Event header")
	case "Push Hook", "Tag Push Hook", "System Hook":
	default:
		p.Ignore = fmt.Sprintf("event %q is not a push", p.Event)
		return p, nil
	}
	var v gitlabPush
	if err := decode(GitLab, payload, &v); err != nil {
		return nil, err
	}
	switch kind := cmp.Or(v.ObjectKind, v.EventName); kind {
	case "push":
	case "tag_push":
		p.Ignore = "tag push (" + strings.TrimPrefix(v.Ref, "refs/tags/") + ")"
		return p, nil
	default:
		p.Ignore = fmt.Sprintf("%s %q is not a push", p.Event, kind)
		return p, nil
	}
	p.Repo = cmp.Or(v.Project.GitHTTPURL, v.Repository.GitHTTPURL, v.Project.WebURL, v.Project.PathWithNamespace)
	p.Pusher = cmp.Or(v.UserUsername, v.UserName)
	if err := p.refUpdate(v.Ref, v.Before, cmp.Or(v.After, v.CheckoutSHA), false); err != nil {
		return nil, err
	}
	return p, nil
}

// giteaPush is the part of Gitea's (and Forgejo's) push payload that
// ferry reads.
type giteaPush struct {
	Ref        string `json:"ref"`
	Before     string `json:"before"`
	After      string `json:"after"`
	Repository struct {
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
		FullName string `json:"full_name"`
	} `json:"repository"`
	Pusher struct {
		Login    string `json:"login"`
		Username string `json:"username"`
	} `json:"pusher"`
}

func parseGitea(h http.Header, payload []byte) (*Push, error) {
	p := &Push{
		Provider: Gitea,
		Event:    cmp.Or(h.Get("X-Gitea-Event"), h.Get("X-Forgejo-Event"), h.Get("X-Gogs-Event")),
		Delivery: cmp.Or(h.Get("X-Gitea-Delivery"), h.Get("X-Forgejo-Delivery"), h.Get("X-Gogs-Delivery")),
	}
	switch p.Event {
	case "":
		return nil, ferry.Errorf(ferry.EINVALID, "missing X-Gitea-Event header (or X-Forgejo-Event)")
	case "push":
	default:
		p.Ignore = fmt.Sprintf("event %q is not a push", p.Event)
		return p, nil
	}
	var v giteaPush
	if err := decode(Gitea, payload, &v); err != nil {
		return nil, err
	}
	p.Repo = cmp.Or(v.Repository.CloneURL, v.Repository.HTMLURL, v.Repository.FullName)
	p.Pusher = cmp.Or(v.Pusher.Login, v.Pusher.Username)
	if err := p.refUpdate(v.Ref, v.Before, v.After, false); err != nil {
		return nil, err
	}
	return p, nil
}

// genericPush is ferry's own minimal payload, in either of two spellings.
type genericPush struct {
	Ref        string `json:"ref"`
	Branch     string `json:"branch"`
	Before     string `json:"before"`
	After      string `json:"after"`
	Commit     string `json:"commit"`
	Repository string `json:"repository"`
	Repo       string `json:"repo"`
	Pusher     string `json:"pusher"`
}

func parseGeneric(h http.Header, payload []byte) (*Push, error) {
	p := &Push{Provider: Generic, Event: "push", Delivery: h.Get("X-Ferry-Delivery")}
	var v genericPush
	if err := decode(Generic, payload, &v); err != nil {
		return nil, err
	}
	ref := v.Ref
	if v.Branch != "" {
		b := "refs/heads/" + strings.TrimPrefix(v.Branch, "refs/heads/")
		if ref != "" && ref != b {
			return nil, ferry.Errorf(ferry.EINVALID, "generic push: ref %q and branch %q disagree", v.Ref, v.Branch)
		}
		ref = b
	}
	after := v.After
	if v.Commit != "" {
		if after != "" && !strings.EqualFold(after, v.Commit) {
			return nil, ferry.Errorf(ferry.EINVALID, "generic push: after %q and commit %q disagree", v.After, v.Commit)
		}
		after = v.Commit
	}
	if after == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "generic push has no commit (want \"after\" or \"commit\")")
	}
	p.Repo = cmp.Or(v.Repository, v.Repo)
	p.Pusher = v.Pusher
	if err := p.refUpdate(ref, v.Before, after, false); err != nil {
		return nil, err
	}
	return p, nil
}

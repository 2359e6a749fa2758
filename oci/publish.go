package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferryhq/ferry"
)

// Publisher pushes, tags, resolves and pulls images in one repository of an
// OCI registry. Creating one is cheap, and a build may make its own to have
// its retries reported in its log; a long-lived one keeps its authenticated
// clients across calls.
type Publisher struct {
	repo     name.Repository
	insecure bool
	rt       http.RoundTripper
	keychain authn.Keychain
	retry    Retry
	base     []remote.Option

	// clients keep one authenticated transport per repository across
	// calls: without them every call pings the registry and authenticates
	// again (two more round trips each). They keep the credentials they
	// resolved first, so a refusal of those renews them (see do).
	mu      sync.Mutex
	clients clients
}

type clients struct {
	puller *remote.Puller
	pusher *remote.Pusher
}

// Option configures a Publisher.
type Option func(*Publisher)

// WithTransport sets the HTTP transport (remote.DefaultTransport by default).
func WithTransport(rt http.RoundTripper) Option { return func(p *Publisher) { p.rt = rt } }

// WithInsecure talks plain HTTP to the registry. Loopback registries
// (127.0.0.1, localhost, [::1]) get it without asking.
func WithInsecure() Option { return func(p *Publisher) { p.insecure = true } }

// WithKeychain sets where credentials come from; by default the usual
// docker configuration ($DOCKER_CONFIG, ~/.docker/config.json and its
// credential helpers).
func WithKeychain(k authn.Keychain) Option { return func(p *Publisher) { p.keychain = k } }

// WithBasicAuth sends user and password to the registry (HTTP basic
// authentication) instead of asking the keychain: ferry's embedded
// registry, whose credentials only ferry holds.
func WithBasicAuth(user, password string) Option {
	return WithKeychain(basicKeychain{authn.FromConfig(authn.AuthConfig{Username: user, Password: password})})
}

// basicKeychain gives one authenticator for every registry: a Publisher
// talks to one.
type basicKeychain struct{ auth authn.Authenticator }

func (k basicKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// WithRetry sets how an unavailable registry is retried (DefaultRetry).
func WithRetry(r Retry) Option { return func(p *Publisher) { p.retry = r } }

// NewPublisher returns a Publisher for repo, a repository without tag or
// digest: "127.0.0.1:5050/birthday-app", "ghcr.io/team/app".
func NewPublisher(repo string, opts ...Option) (*Publisher, error) {
	p := &Publisher{
		rt:       remote.DefaultTransport,
		keychain: authn.DefaultKeychain,
		retry:    DefaultRetry,
	}
	for _, o := range opts {
		o(p)
	}
	if strings.ContainsAny(repo, "@") || strings.Contains(repo, "://") {
		return nil, ferry.Errorf(ferry.EINVALID, "image repository %q: want host/path, without scheme, tag or digest", repo)
	}
	var nopts []name.Option
	if p.insecure || loopbackRegistry(repo) {
		p.insecure = true
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.NewRepository(repo, nopts...)
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EINVALID, "image repository %q is not a valid repository name", repo)
	}
	if !strings.Contains(repo, "/") {
		// name.NewRepository would read "app" as "index.docker.io/library/app";
		// ferry wants the registry named.
		return nil, ferry.Errorf(ferry.EINVALID, "image repository %q: want host/path", repo)
	}
	p.repo = r
	p.base = []remote.Option{
		remote.WithTransport(p.rt), remote.WithAuthFromKeychain(p.keychain), remote.WithUserAgent("ferry"),
		// Retries happen around whole operations (see Retry); one try
		// per request here keeps the deadline honest.
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	}
	if p.clients, err = p.newClients(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Publisher) newClients() (clients, error) {
	puller, err := remote.NewPuller(p.base...)
	if err != nil {
		return clients{}, fmt.Errorf("registry client: %w", err)
	}
	pusher, err := remote.NewPusher(p.base...)
	if err != nil {
		return clients{}, fmt.Errorf("registry client: %w", err)
	}
	return clients{puller: puller, pusher: pusher}, nil
}

// loopbackRegistry reports whether the registry part of repo is a loopback
// host.
func loopbackRegistry(repo string) bool {
	host, _, _ := strings.Cut(repo, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Repo returns the repository, as used in references.
func (p *Publisher) Repo() string { return p.repo.Name() }

// Ref returns the full reference of a digest ("sha256:…") or a tag in the
// repository: "host/app@sha256:…" or "host/app:tag".
func (p *Publisher) Ref(digestOrTag string) string {
	if strings.Contains(digestOrTag, ":") {
		return p.repo.Name() + "@" + digestOrTag
	}
	return p.repo.Name() + ":" + digestOrTag
}

// do runs op under the retry policy with the options of the current
// clients. The clients resolve credentials once, when they first reach a
// repository, and keep them: credentials written after that (a login
// after ferry started, a registry that came up with new ones) would be
// refused for as long as ferry runs. So when the registry answers 401, the
// clients are renewed and op is tried once more, reading the keychain
// again.
func (p *Publisher) do(ctx context.Context, op func(context.Context, []remote.Option) error) error {
	renewed := false
	return p.retry.do(ctx, func(ctx context.Context) error {
		c := p.current()
		err := op(ctx, p.options(ctx, c))
		if !unauthorized(err) || renewed {
			return err
		}
		renewed = true
		if c, err = p.renew(c); err != nil {
			return err
		}
		return op(ctx, p.options(ctx, c))
	})
}

func (p *Publisher) current() clients {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clients
}

// renew replaces the clients that were refused, unless a concurrent call
// has already done so, and returns the ones to use.
func (p *Publisher) renew(refused clients) (clients, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.clients != refused {
		return p.clients, nil
	}
	c, err := p.newClients()
	if err != nil {
		return refused, err
	}
	p.clients = c
	return c, nil
}

func (p *Publisher) options(ctx context.Context, c clients) []remote.Option {
	return append(slices.Clone(p.base), remote.WithContext(ctx), remote.Reuse(c.puller), remote.Reuse(c.pusher))
}

func unauthorized(err error) bool {
	te, ok := errors.AsType[*transport.Error](err)
	return ok && te.StatusCode == http.StatusUnauthorized
}

func (p *Publisher) digestRef(digest string) (name.Digest, error) {
	d, err := name.NewDigest(p.repo.Name()+"@"+digest, p.nameOptions()...)
	if err != nil {
		return name.Digest{}, ferry.Wrap(err, ferry.EINVALID, "image digest %q is not a valid digest (sha256:<64 hex>)", digest)
	}
	return d, nil
}

// validTag is the OCI distribution spec's tag grammar.
var validTag = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`) })

func (p *Publisher) tagRef(tag string) (name.Tag, error) {
	if !validTag().MatchString(tag) {
		return name.Tag{}, ferry.Errorf(ferry.EINVALID, "image tag %q: want at most 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'", tag)
	}
	t, err := name.NewTag(p.repo.Name()+":"+tag, p.nameOptions()...)
	if err != nil {
		return name.Tag{}, ferry.Wrap(err, ferry.EINVALID, "image tag %q is not valid in repository %s", tag, p.repo.Name())
	}
	return t, nil
}

func (p *Publisher) nameOptions() []name.Option {
	if p.insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// Push uploads img by digest, then points each tag at it, and returns the
// digest ("sha256:…"). Blobs and manifests the registry already has are not
// uploaded again: pushing an image that is there costs a manifest HEAD and
// one manifest PUT per tag.
func (p *Publisher) Push(ctx context.Context, img v1.Image, tags ...string) (string, error) {
	h, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("push: image digest: %w", err)
	}
	ref, err := p.digestRef(h.String())
	if err != nil {
		return "", err
	}
	tagRefs := make([]name.Tag, len(tags))
	for i, tag := range tags {
		if tagRefs[i], err = p.tagRef(tag); err != nil {
			return "", err
		}
	}
	err = p.do(ctx, func(ctx context.Context, opts []remote.Option) error {
		return remote.Write(ref, img, opts...)
	})
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	for _, t := range tagRefs {
		err := p.do(ctx, func(ctx context.Context, opts []remote.Option) error {
			return remote.Tag(t, img, opts...)
		})
		if err != nil {
			return "", fmt.Errorf("tag %s: %w", t, err)
		}
	}
	return h.String(), nil
}

// Tag points tag at the manifest digest, which must be in the repository.
// Only the manifest is read and written: no blob is uploaded.
func (p *Publisher) Tag(ctx context.Context, digest, tag string) error {
	ref, err := p.digestRef(digest)
	if err != nil {
		return err
	}
	t, err := p.tagRef(tag)
	if err != nil {
		return err
	}
	err = p.do(ctx, func(ctx context.Context, opts []remote.Option) error {
		desc, err := remote.Get(ref, opts...)
		if err != nil {
			return err
		}
		return remote.Tag(t, desc, opts...)
	})
	if isNotFound(err) {
		return ferry.Errorf(ferry.ENOTFOUND, "tag %s: no image %s", t, ref)
	}
	if err != nil {
		return fmt.Errorf("tag %s: %w", t, err)
	}
	return nil
}

// Resolve returns the manifest digest a tag points at. A missing tag is a
// ferry.ENOTFOUND error.
func (p *Publisher) Resolve(ctx context.Context, tag string) (string, error) {
	t, err := p.tagRef(tag)
	if err != nil {
		return "", err
	}
	var desc *v1.Descriptor
	err = p.do(ctx, func(ctx context.Context, opts []remote.Option) error {
		var err error
		desc, err = remote.Head(t, opts...)
		return err
	})
	if isNotFound(err) {
		return "", ferry.Errorf(ferry.ENOTFOUND, "no image %s", t)
	}
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", t, err)
	}
	return desc.Digest.String(), nil
}

// Image returns the image with the manifest digest, for pulling. Its
// manifest is fetched now; its config and layers when read.
func (p *Publisher) Image(ctx context.Context, digest string) (v1.Image, error) {
	ref, err := p.digestRef(digest)
	if err != nil {
		return nil, err
	}
	var img v1.Image
	err = p.do(ctx, func(ctx context.Context, opts []remote.Option) error {
		var err error
		img, err = remote.Image(ref, opts...)
		return err
	})
	if isNotFound(err) {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "no image %s", ref)
	}
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return img, nil
}

func isNotFound(err error) bool {
	te, ok := errors.AsType[*transport.Error](err)
	return ok && te.StatusCode == http.StatusNotFound
}

// ListTags lists the repository's tags (an empty repository has none).
func (p *Publisher) ListTags(ctx context.Context) ([]string, error) {
	var tags []string
	err := p.do(ctx, func(ctx context.Context, opts []remote.Option) error {
		var err error
		tags, err = remote.List(p.repo, opts...)
		return err
	})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the tags of %s: %w", p.repo.Name(), err)
	}
	return tags, nil
}

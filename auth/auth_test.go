package auth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

func TestGenerate(t *testing.T) {
	zeros := bytes.NewReader(make([]byte, 64))
	secret, hash, err := auth.Generate(zeros)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ferry_" + strings.Repeat("a", 52); secret != want {
		t.Errorf("Generate(zeros) secret = %q, want %q", secret, want)
	}
	if hash != auth.Hash(secret) {
		t.Errorf("Generate(zeros) hash = %q, want Hash(secret) = %q", hash, auth.Hash(secret))
	}
	if !ledger.ValidTokenHash(hash) {
		t.Errorf("Generate hash %q is not what the ledger stores", hash)
	}
	a, _, err := auth.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := auth.Generate(nil)
	if a == b || len(a) != len(secret) || !strings.HasPrefix(a, auth.Prefix) {
		t.Errorf("Generate(crypto/rand) = %q, %q; want two different %d-character ferry_ secrets", a, b, len(secret))
	}
	if _, _, err := auth.Generate(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Errorf("Generate(31 random bytes) = nil error, want one")
	}
}

func TestHash(t *testing.T) {
	// The SHA-256 test vector of FIPS 180-2.
	if got, want := auth.Hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("Hash(abc) = %s, want %s", got, want)
	}
}

func TestRoleOrder(t *testing.T) {
	roles := ferry.Roles()
	for i, have := range roles {
		for j, need := range roles {
			if got, want := have.Allows(need), i >= j; got != want {
				t.Errorf("%s.Allows(%s) = %v, want %v", have, need, got, want)
			}
		}
		if ferry.Role("root").Allows(have) || have.Allows("root") || ferry.Role("").Allows(have) {
			t.Errorf("an unknown role allows or is allowed by %s", have)
		}
	}
	for _, s := range []string{"viewer", "deployer", "releaser", "admin"} {
		if r, err := ferry.ParseRole(s); err != nil || string(r) != s {
			t.Errorf("ParseRole(%q) = %q, %v", s, r, err)
		}
	}
	for _, s := range []string{"releasr", "Admin", "", " admin"} {
		_, err := ferry.ParseRole(s)
		if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "viewer, deployer, releaser or admin") {
			t.Errorf("ParseRole(%q) = %v, want EINVALID listing the roles", s, err)
		}
	}
}

// fakeLookup serves tokens by hash, as the ledger would.
func fakeLookup(tokens map[string]*ferry.Token, fail error) auth.Lookup {
	return func(_ context.Context, hash string) (*ferry.Token, error) {
		if fail != nil {
			return nil, fail
		}
		if tok, ok := tokens[hash]; ok {
			return tok, nil
		}
		return nil, ferry.Errorf(ferry.ENOTFOUND, "unknown token")
	}
}

func TestMiddleware(t *testing.T) {
	valid := &ferry.Token{ID: 1, Name: "ci", Role: ferry.RoleDeployer}
	revoked := &ferry.Token{ID: 2, Name: "old", Role: ferry.RoleAdmin, RevokedAt: time.Now()}
	tokens := map[string]*ferry.Token{auth.Hash("ferry_valid"): valid, auth.Hash("ferry_revoked"): revoked}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "reached as "+auth.Actor(r))
	})
	h := auth.Middleware(fakeLookup(tokens, nil), next)
	broken := auth.Middleware(fakeLookup(nil, errors.New("disk on fire")), next)

	tests := []struct {
		name       string
		h          http.Handler
		method     string
		path       string
		header     string // Authorization
		wantStatus int
		wantBody   string
	}{
		{"no header", h, "GET", "/api/v1/builds", "", 401, "this API needs a token"},
		{"wrong scheme", h, "GET", "/api/v1/builds", "Basic Y2k6cHc=", 401, "the Authorization header must be"},
		{"bearer without token", h, "GET", "/api/v1/builds", "Bearer ", 401, "no token"},
		{"token without scheme", h, "GET", "/api/v1/builds", "ferry_valid", 401, "must be"},
		{"unknown", h, "GET", "/api/v1/builds", "Bearer ferry_nope", 401, "unknown API token"},
		{"revoked", h, "POST", "/api/v1/builds", "Bearer ferry_revoked", 401, `API token \"old\" was revoked`},
		{"valid", h, "POST", "/api/v1/builds", "Bearer ferry_valid", 200, "reached as ci"},
		{"scheme is case-insensitive", h, "GET", "/api/v1/builds", "bearer ferry_valid", 200, "reached as ci"},
		// Public routes are the API's (api/access.go): the middleware
		// itself exempts no path.
		{"no exemption for the health check", h, "GET", "/healthz", "", 401, "needs a token"},
		{"no exemption for webhooks", h, "POST", "/hooks/github", "", 401, "needs a token"},
		{"ledger down", broken, "GET", "/api/v1/builds", "Bearer ferry_valid", 503, "cannot check the API token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://ferry"+tt.path, nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			rec := httptest.NewRecorder()
			tt.h.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%s %s (Authorization %q) = %d %s, want %d with %q", tt.method, tt.path, tt.header, rec.Code, body, tt.wantStatus, tt.wantBody)
			}
			if rec.Code == 401 {
				var eb struct{ Error, Code string }
				if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Code != "unauthorized" || eb.Error == "" {
					t.Errorf("401 body = %s, want {\"error\": …, \"code\": \"unauthorized\"}", body)
				}
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
				if strings.Contains(body, "ferry_") {
					t.Errorf("401 body %s repeats the secret or an internal error", body)
				}
			}
			if strings.Contains(body, "disk on fire") {
				t.Errorf("body %s shows the internal error", body)
			}
		})
	}
}

func TestRequire(t *testing.T) {
	req := func(tok *ferry.Token) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		if tok != nil {
			r = r.WithContext(auth.WithToken(r.Context(), tok))
		}
		return r
	}
	deployer := &ferry.Token{Name: "ci", Role: ferry.RoleDeployer}
	tests := []struct {
		tok      *ferry.Token
		need     ferry.Role
		wantCode string
		wantMsg  string
	}{
		{deployer, ferry.RoleViewer, "", ""},
		{deployer, ferry.RoleDeployer, "", ""},
		{deployer, ferry.RoleReleaser, ferry.EFORBIDDEN, `token "ci" has role deployer; this needs releaser`},
		{deployer, ferry.RoleAdmin, ferry.EFORBIDDEN, `token "ci" has role deployer; this needs admin`},
		{&ferry.Token{Name: "boss", Role: ferry.RoleAdmin}, ferry.RoleReleaser, "", ""},
		{&ferry.Token{Name: "eye", Role: ferry.RoleViewer}, ferry.RoleDeployer, ferry.EFORBIDDEN, `token "eye" has role viewer; this needs deployer`},
		{nil, ferry.RoleViewer, ferry.EUNAUTHORIZED, "this needs a token with role viewer"},
	}
	for _, tt := range tests {
		name := "no token"
		if tt.tok != nil {
			name = string(tt.tok.Role)
		}
		err := auth.Require(req(tt.tok), tt.need)
		if ferry.ErrorCode(err) != tt.wantCode || ferry.ErrorMessage(err) != tt.wantMsg {
			t.Errorf("Require(%s, %s) = %v, want code %q message %q", name, tt.need, err, tt.wantCode, tt.wantMsg)
		}
	}
	if got := auth.Actor(req(deployer)); got != "ci" {
		t.Errorf("Actor = %q, want ci", got)
	}
	if got := auth.Actor(req(nil)); got != "" {
		t.Errorf("Actor without token = %q, want empty", got)
	}
}

// TestMayChange: an environment's changes need its configured role, and
// admin when it names none or no role; a revoked token may change nothing.
func TestMayChange(t *testing.T) {
	deployer := &ferry.Token{Name: "ci", Role: ferry.RoleDeployer}
	admin := &ferry.Token{Name: "boss", Role: ferry.RoleAdmin}
	revoked := &ferry.Token{Name: "old", Role: ferry.RoleAdmin, RevokedAt: time.Unix(1, 0)}
	dev := ferry.Environment{Name: "dev", Role: ferry.RoleDeployer}
	prod := ferry.Environment{Name: "prod", From: "dev", Role: ferry.RoleReleaser}
	unset := ferry.Environment{Name: "qa"}
	typo := ferry.Environment{Name: "qa", Role: "releasr"}
	tests := []struct {
		tok      *ferry.Token
		env      ferry.Environment
		wantRole ferry.Role
		wantCode string
		wantMsg  string
	}{
		{deployer, dev, ferry.RoleDeployer, "", ""},
		{deployer, prod, ferry.RoleReleaser, ferry.EFORBIDDEN, `token "ci" has role deployer; this needs releaser`},
		{admin, prod, ferry.RoleReleaser, "", ""},
		{deployer, unset, ferry.RoleAdmin, ferry.EFORBIDDEN, `token "ci" has role deployer; this needs admin`},
		{deployer, typo, ferry.RoleAdmin, ferry.EFORBIDDEN, `token "ci" has role deployer; this needs admin`},
		{admin, typo, ferry.RoleAdmin, "", ""},
		{revoked, dev, ferry.RoleDeployer, ferry.EUNAUTHORIZED, `API token "old" was revoked`},
		{nil, dev, ferry.RoleDeployer, ferry.EUNAUTHORIZED, "this needs a token with role deployer"},
	}
	for _, tt := range tests {
		name := "no token"
		if tt.tok != nil {
			name = tt.tok.Name
		}
		if got := auth.EnvRole(tt.env); got != tt.wantRole {
			t.Errorf("EnvRole(%s with role %q) = %s, want %s", tt.env.Name, tt.env.Role, got, tt.wantRole)
		}
		err := auth.MayChange(tt.tok, tt.env)
		if ferry.ErrorCode(err) != tt.wantCode || ferry.ErrorMessage(err) != tt.wantMsg {
			t.Errorf("MayChange(%s, %s with role %q) = %v, want code %q message %q", name, tt.env.Name, tt.env.Role, err, tt.wantCode, tt.wantMsg)
		}
	}
}

// clock is a settable time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	store, err := sqlite.Open(t.Context(), filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	tokens := &auth.Tokens{Store: store, App: "birthday-app", Now: c.now}
	ctx := t.Context()

	tok, secret, err := tokens.Create(ctx, "ci", ferry.RoleDeployer, "ada", "for the CI pipeline")
	if err != nil {
		t.Fatalf("Create(ci) = %v", err)
	}
	if !strings.HasPrefix(secret, auth.Prefix) || tok.Hash != auth.Hash(secret) || tok.CreatedBy != "ada" || !tok.CreatedAt.Equal(c.t) {
		t.Errorf("Create(ci) = %+v, %q; want a ferry_ secret, its hash, created by ada now", tok, secret)
	}
	if _, _, err := tokens.Create(ctx, "ci", ferry.RoleAdmin, "ada", ""); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("Create(ci) again = %v, want ECONFLICT", err)
	}
	if _, _, err := tokens.Create(ctx, "x", "releasr", "ada", ""); ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), "releaser") {
		t.Errorf("Create(role releasr) = %v, want EINVALID listing the roles", err)
	}
	if _, _, err := tokens.Create(ctx, "ferry", ferry.RoleViewer, "ada", ""); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("Create(ferry) = %v, want EINVALID: the name is ferry's own", err)
	}

	// Lookup writes the last use at most once per TouchEvery.
	got, err := tokens.Lookup(ctx, auth.Hash(secret))
	if err != nil || got.Name != "ci" || !got.LastUsedAt.Equal(c.t) {
		t.Fatalf("Lookup(ci) = %+v, %v; want ci used now", got, err)
	}
	first := c.t
	c.t = c.t.Add(30 * time.Second)
	tokens.Lookup(ctx, auth.Hash(secret))
	stored, _ := store.TokenByHash(ctx, auth.Hash(secret))
	if !stored.LastUsedAt.Equal(first) {
		t.Errorf("30s later LastUsedAt = %v, want %v still (touched at most once a minute)", stored.LastUsedAt, first)
	}
	c.t = first.Add(61 * time.Second)
	tokens.Lookup(ctx, auth.Hash(secret))
	stored, _ = store.TokenByHash(ctx, auth.Hash(secret))
	if !stored.LastUsedAt.Equal(c.t) {
		t.Errorf("61s later LastUsedAt = %v, want %v", stored.LastUsedAt, c.t)
	}
	if _, err := tokens.Lookup(ctx, auth.Hash("ferry_nope")); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Lookup(unknown) = %v, want ENOTFOUND", err)
	}

	revoked, err := tokens.Revoke(ctx, "ci", "root", "laptop stolen")
	if err != nil || !revoked.Revoked() || revoked.Name != "ci" {
		t.Fatalf("Revoke(ci) = %+v, %v; want ci revoked", revoked, err)
	}
	if _, err := tokens.Revoke(ctx, "ci", "root", ""); ferry.ErrorCode(err) != ferry.ECONFLICT {
		t.Errorf("Revoke(ci) again = %v, want ECONFLICT", err)
	}
	if _, err := tokens.Revoke(ctx, "nobody", "root", ""); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Errorf("Revoke(nobody) = %v, want ENOTFOUND", err)
	}
	got, err = tokens.Lookup(ctx, auth.Hash(secret))
	if err != nil || !got.Revoked() {
		t.Errorf("Lookup(revoked ci) = %+v, %v; want it, revoked", got, err)
	}

	// The audit trail has both changes with actor and reason.
	events, err := store.Events(ctx, ledger.EventFilter{App: "birthday-app", Kind: "token."})
	if err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, e := range events {
		trail = append(trail, e.Kind+" by "+e.Actor+": "+e.Message+" ("+e.Reason+")")
	}
	want := []string{
		"token.revoked by root: token ci revoked (laptop stolen)",
		"token.created by ada: token ci created with role deployer (for the CI pipeline)",
	}
	if strings.Join(trail, "\n") != strings.Join(want, "\n") {
		t.Errorf("token events =\n%s\nwant\n%s", strings.Join(trail, "\n"), strings.Join(want, "\n"))
	}

	// The secret is nowhere in the ledger's files; its hash is.
	store.Close()
	var all []byte
	files, _ := filepath.Glob(filepath.Join(dir, "ledger.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if bytes.Contains(all, []byte(secret)) || bytes.Contains(all, []byte(secret[len(auth.Prefix):])) {
		t.Errorf("the ledger's files hold the token's secret")
	}
	if !bytes.Contains(all, []byte(auth.Hash(secret))) {
		t.Errorf("the ledger's files lack the token's hash: is the check above looking at the right files (%v)?", files)
	}
}

package cli

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

// useCredentials points the credentials file into a fresh directory for
// t and returns the file's path.
func useCredentials(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("FERRY_TOKEN", "")
	return filepath.Join(dir, "ferry", "credentials.json")
}

func writeConfig(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "ferry.yaml")
	err := os.WriteFile(p, []byte(`app: birthday-app
dataDir: data
source: { repo: /srv/git/birthday-app.git }
build: { go: { main: ./cmd/birthday-app } }
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:8081 } }
  prod:
    from: dev
    runtime: { local: { listen: 127.0.0.1:8082 } }
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTokenBootstrap makes the first admin token on the server's machine:
// no server, no token, just the configuration and its ledger.
func TestTokenBootstrap(t *testing.T) {
	creds := useCredentials(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir)

	stdout, stderr, code := run(t, "token", "create", "--name", "alice", "--role", "admin", "-c", cfg, "--save", "--reason", "first admin")
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, stderr)
	}
	secret := strings.TrimSpace(stdout)
	if !strings.HasPrefix(secret, auth.Prefix) || strings.Count(stdout, "\n") != 1 {
		t.Errorf("token create stdout = %q, want the secret alone", stdout)
	}
	ledgerPath := filepath.Join(dir, "data", "ledger.db")
	for _, want := range []string{`created token "alice" with role admin in the sqlite ledger ` + ledgerPath, "saved for http://127.0.0.1:7070 in " + creds} {
		if !strings.Contains(stderr, want) {
			t.Errorf("token create stderr = %q, want %q", stderr, want)
		}
	}
	if strings.Contains(stderr, secret) {
		t.Errorf("the secret is on stderr too: %q", stderr)
	}
	info, err := os.Stat(creds)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, mode %v; want 0600", err, info.Mode())
	}
	if got, _ := findToken("", "http://127.0.0.1:7070/"); got != secret {
		t.Errorf("findToken(default server) = %q, want the saved secret", got)
	}

	// Strict roles; refused input makes nothing.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "ci", "--role", "releasr"}, `--role: unknown role "releasr" (want viewer, deployer, releaser or admin)`},
		{[]string{"--name", "ci"}, `--role: unknown role ""`},
		{[]string{"--role", "admin"}, "--name is required"},
		{[]string{"--name", "bad name", "--role", "viewer"}, `token name "bad name"`},
		{[]string{"--name", "alice", "--role", "viewer"}, `a token named "alice" already exists`},
	} {
		args := append([]string{"token", "create", "-c", cfg}, tc.args...)
		_, stderr, code := run(t, args...)
		wantCode := 2
		if strings.Contains(tc.want, "token") {
			wantCode = 1 // refused by the ledger, not by flag parsing
		}
		if code != wantCode || !strings.Contains(stderr, tc.want) {
			t.Errorf("ferry %s: exit %d %q, want exit %d with %q", strings.Join(args, " "), code, stderr, wantCode, tc.want)
		}
	}

	if _, stderr, code := run(t, "token", "create", "--name", "ci", "--role", "deployer", "-c", cfg); code != 0 {
		t.Fatalf("token create ci: exit %d: %s", code, stderr)
	}
	if stdout, stderr, code := run(t, "token", "revoke", "ci", "-c", cfg, "--reason", "rotated"); code != 0 || !strings.Contains(stdout, `revoked token "ci" (role deployer)`) {
		t.Errorf("token revoke ci: exit %d %q %q", code, stdout, stderr)
	}
	stdout, stderr, code = run(t, "token", "list", "-c", cfg, "-o", "json")
	if code != 0 {
		t.Fatalf("token list: exit %d: %s", code, stderr)
	}
	var list struct{ Tokens []*ferry.Token }
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("token list JSON: %v\n%s", err, stdout)
	}
	var got []string
	for _, tok := range list.Tokens {
		got = append(got, tok.Name+" "+string(tok.Role)+" revoked="+boolString(tok.Revoked()))
	}
	if want := []string{"ci deployer revoked=true", "alice admin revoked=false"}; !slices.Equal(got, want) {
		t.Errorf("token list = %q, want %q", got, want)
	}
	if strings.Contains(stdout, secret) || strings.Contains(stdout, auth.Hash(secret)) {
		t.Errorf("token list shows a secret or hash: %s", stdout)
	}

	// The audit trail of the ledger names the local actor and the reasons.
	store, err := sqlite.Open(t.Context(), ledgerPath)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	events, err := store.Events(t.Context(), ledger.EventFilter{App: "birthday-app", Kind: "token."})
	if err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, e := range events {
		trail = append(trail, e.Kind+" "+strings.SplitN(e.Actor, ":", 2)[0]+" "+e.Reason)
	}
	if want := []string{"token.revoked local rotated", "token.created local ", "token.created local first admin"}; !slices.Equal(trail, want) {
		t.Errorf("token events = %q, want %q", trail, want)
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestTokenNowhere: without a server token and without a configuration,
// token commands say what they need.
func TestTokenNowhere(t *testing.T) {
	useCredentials(t)
	t.Chdir(t.TempDir())
	t.Setenv("FERRY_CONFIG", "")
	_, stderr, code := run(t, "token", "list")
	if code != 2 || !strings.Contains(stderr, "no API token for http://127.0.0.1:7070 and no ferry.yaml here") {
		t.Errorf("token list with nothing at hand: exit %d %q, want exit 2 explaining both ways", code, stderr)
	}
}

// TestTokenThroughAPI manages tokens through a real API handler on a real
// ledger, with the admin token taken from --token, FERRY_TOKEN and the
// credentials file in turn.
func TestTokenThroughAPI(t *testing.T) {
	creds := useCredentials(t)
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tokens := &auth.Tokens{Store: store, App: "app"}
	_, admin, err := tokens.Create(t.Context(), "root", ferry.RoleAdmin, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	_, viewer, err := tokens.Create(t.Context(), "eye", ferry.RoleViewer, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&api.Server{App: "app", Ledger: store, Tokens: tokens, Logger: slog.New(slog.DiscardHandler)}).Handler())
	defer srv.Close()

	stdout, stderr, code := run(t, "token", "create", "--name", "ci", "--role", "deployer", "--server", srv.URL, "--token", admin)
	if code != 0 {
		t.Fatalf("token create through the API: exit %d: %s", code, stderr)
	}
	ci := strings.TrimSpace(stdout)
	if !strings.Contains(stderr, `created token "ci" with role deployer through `+srv.URL) {
		t.Errorf("token create stderr = %q", stderr)
	}
	if tok, err := store.TokenByHash(t.Context(), auth.Hash(ci)); err != nil || tok.Name != "ci" || tok.CreatedBy != "root" {
		t.Errorf("ledger has %+v, %v for the new secret; want ci created by root", tok, err)
	}

	t.Setenv("FERRY_TOKEN", admin)
	stdout, stderr, code = run(t, "token", "list", "--server", srv.URL)
	if code != 0 || !strings.Contains(stdout, "ci ") || !strings.Contains(stdout, "root ") {
		t.Errorf("token list with FERRY_TOKEN: exit %d %q %q", code, stdout, stderr)
	}
	t.Setenv("FERRY_TOKEN", "")

	if err := saveCredential(creds, srv.URL, "root", admin); err != nil {
		t.Fatal(err)
	}
	// No --server, no -c: the stored token for the default server decides.
	t.Setenv("FERRY_SERVER", srv.URL)
	if stdout, stderr, code := run(t, "token", "revoke", "ci", "--reason", "done"); code != 0 || !strings.Contains(stdout, "through "+srv.URL) {
		t.Errorf("token revoke with the credentials file: exit %d %q %q", code, stdout, stderr)
	}
	_, stderr, code = run(t, "token", "list", "--token", ci)
	if code != 1 || !strings.Contains(stderr, `API token "ci" was revoked`) || !strings.Contains(stderr, "FERRY_TOKEN") {
		t.Errorf("token list with the revoked token: exit %d %q, want the refusal and where the CLI looks", code, stderr)
	}
	_, stderr, code = run(t, "token", "create", "--name", "x", "--role", "admin", "--token", viewer)
	if code != 1 || !strings.Contains(stderr, `token "eye" has role viewer; this needs admin`) {
		t.Errorf("token create with a viewer token: exit %d %q", code, stderr)
	}
	// The flag beats the file: a bad --token is refused although the file
	// holds a good one.
	_, stderr, code = run(t, "builds", "--token", "ferry_nope")
	if code != 1 || !strings.Contains(stderr, "unknown API token") {
		t.Errorf("builds --token ferry_nope: exit %d %q", code, stderr)
	}
}

func TestCredentialsFile(t *testing.T) {
	creds := useCredentials(t)
	if err := os.MkdirAll(filepath.Dir(creds), 0o700); err != nil {
		t.Fatal(err)
	}
	// Another tool's entry, written by hand, is kept.
	if err := os.WriteFile(creds, []byte(`{"servers": {"https://ferry.example.com": {"token": "ferry_other"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := saveCredential(creds, "http://127.0.0.1:7070/", "a", "ferry_a"); err != nil {
		t.Fatal(err)
	}
	if err := saveCredential(creds, "HTTP://127.0.0.1:7071", "b", "ferry_b"); err != nil {
		t.Fatal(err)
	}
	if err := saveCredential(creds, "http://127.0.0.1:7070", "a2", "ferry_a2"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ server, want string }{
		{"https://ferry.example.com", "ferry_other"},
		{"http://127.0.0.1:7070", "ferry_a2"},
		{"http://127.0.0.1:7071/", "ferry_b"},
		{"http://127.0.0.1:7072", ""},
	} {
		if got, err := findToken("", tc.server); got != tc.want || err != nil {
			t.Errorf("findToken(%s) = %q, %v; want %q", tc.server, got, err, tc.want)
		}
	}
	t.Setenv("FERRY_TOKEN", "ferry_env")
	if got, _ := findToken("", "http://127.0.0.1:7070"); got != "ferry_env" {
		t.Errorf("findToken with FERRY_TOKEN = %q, want ferry_env", got)
	}
	if got, _ := findToken("ferry_flag", "http://127.0.0.1:7070"); got != "ferry_flag" {
		t.Errorf("findToken with --token = %q, want ferry_flag", got)
	}
	t.Setenv("FERRY_TOKEN", "")
	info, _ := os.Stat(creds)
	if info.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %v, want 0600", info.Mode().Perm())
	}
	if err := os.WriteFile(creds, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := findToken("", "http://127.0.0.1:7070"); err == nil || !strings.Contains(err.Error(), creds) {
		t.Errorf("findToken with a broken file = %v, want an error naming it", err)
	}
	if err := saveCredential(creds, "http://127.0.0.1:7070", "a", "ferry_a"); err == nil {
		t.Errorf("saveCredential over a broken file = nil, want an error (it would lose the entries)")
	}
}

func TestEnsureDemoToken(t *testing.T) {
	creds := useCredentials(t)
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := t.Context()
	const url = "http://127.0.0.1:7070"
	if err := saveCredential(creds, "https://elsewhere.example.com", "x", "ferry_elsewhere"); err != nil {
		t.Fatal(err)
	}

	tok, created, err := ensureDemoToken(ctx, store, "birthday-app", url, creds, time.Now)
	if err != nil || !created || tok.Name != "demo-admin" || tok.Role != ferry.RoleAdmin {
		t.Fatalf("first ensureDemoToken = %+v, %v, %v; want demo-admin made", tok, created, err)
	}
	first, _ := findToken("", url)
	if stored, err := store.TokenByHash(ctx, auth.Hash(first)); err != nil || stored.Name != "demo-admin" {
		t.Errorf("the stored secret is %+v, %v in the ledger; want demo-admin", stored, err)
	}

	tok, created, err = ensureDemoToken(ctx, store, "birthday-app", url, creds, time.Now)
	if err != nil || created || tok.Name != "demo-admin" {
		t.Errorf("second ensureDemoToken = %+v, %v, %v; want demo-admin reused", tok, created, err)
	}
	if again, _ := findToken("", url); again != first {
		t.Errorf("the second run changed the stored secret")
	}

	if err := store.RevokeToken(ctx, "demo-admin", time.Now()); err != nil {
		t.Fatal(err)
	}
	tok, created, err = ensureDemoToken(ctx, store, "birthday-app", url, creds, time.Now)
	if err != nil || !created || tok.Name != "demo-admin-2" {
		t.Errorf("ensureDemoToken after revocation = %+v, %v, %v; want demo-admin-2 made", tok, created, err)
	}
	if other, _ := findToken("", "https://elsewhere.example.com"); other != "ferry_elsewhere" {
		t.Errorf("another server's entry = %q, want it kept", other)
	}
}

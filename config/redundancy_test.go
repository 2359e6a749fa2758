package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRedundancyGaps(t *testing.T) {
	const redundant = `app: demo
ledger: postgres://ferry@db.internal/ferry
registry: { image: registry.example.com/demo }
signing: { key: KEY }
source: { repo: https://git.example.com/demo.git }
build:
  go: { main: ./cmd/demo }
environments:
  dev:
    branch: master
    runtime: { kubernetes: { namespace: dev } }
  prod:
    branch: release
    from: dev
    runtime: { kubernetes: { namespace: prod } }
`
	for _, tc := range []struct {
		name       string
		old, new   string
		wantPrefix []string // each gap's start, in order
	}{
		{name: "redundant"},
		{name: "sqlite ledger", old: "ledger: postgres://ferry@db.internal/ferry", new: "ledger: sqlite:///var/lib/ferry/ledger.db", wantPrefix: []string{"ledger:"}},
		{name: "embedded registry", old: "registry: { image: registry.example.com/demo }", new: "registry: { listen: 127.0.0.1:5050 }", wantPrefix: []string{"registry:"}},
		{name: "own signing keys", old: "signing: { key: KEY }\n", wantPrefix: []string{"signing.key:"}},
		{name: "local prod", old: "runtime: { kubernetes: { namespace: prod } }", new: `runtime: { local: { listen: "127.0.0.1:8082" } }`, wantPrefix: []string{"environments.prod.runtime:"}},
		{name: "one server's setup", old: redundant, new: minimal, wantPrefix: []string{"ledger:", "registry:", "signing.key:", "environments.dev.runtime:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := filepath.Join(t.TempDir(), "signing.key")
			if err := os.WriteFile(key, testKeyPEM(t), 0o600); err != nil {
				t.Fatal(err)
			}
			text := strings.Replace(redundant, "KEY", key, 1)
			if tc.old != "" {
				if !strings.Contains(redundant, tc.old) {
					t.Fatalf("the redundant configuration has no %q", tc.old)
				}
				text = strings.Replace(text, strings.Replace(tc.old, "KEY", key, 1), tc.new, 1)
			}
			gaps := mustParse(t, "ferry.yaml", text).RedundancyGaps()
			var got []string
			for _, g := range gaps {
				field, _, _ := strings.Cut(g, " ")
				got = append(got, field)
			}
			if !slices.Equal(got, tc.wantPrefix) {
				t.Errorf("gaps start with %q, want %q; gaps:\n%s", got, tc.wantPrefix, strings.Join(gaps, "\n"))
			}
		})
	}
}

// testKeyPEM is a fresh P-256 private key, PKCS#8 in PEM.
func testKeyPEM(t *testing.T) []byte {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

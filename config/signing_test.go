package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSigning: signing.key names a PEM private key, relative to the file;
// a missing file, a public key or a password without a key are problems
// at their line.
func TestSigning(t *testing.T) {
	dir := t.TempDir()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ferry.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	write("ferry.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	env := "environments:\n  dev: { branch: master, runtime: { local: { listen: 127.0.0.1:8081 } } }\n"

	tests := []struct {
		name, signing string
		key, password string // wanted on success
		problem       string // wanted error, after "ferry.yaml"
	}{
		{"absent: ferry makes its own", "", "", "", ""},
		{"a key, relative to the file", "signing:\n  key: ferry.key\n", filepath.Join(dir, "ferry.key"), "", ""},
		{"a key and its password", "signing:\n  key: ferry.key\n  password: { env: COSIGN_PASSWORD }\n", filepath.Join(dir, "ferry.key"), "env:COSIGN_PASSWORD", ""},
		{"missing file", "signing:\n  key: nowhere.key\n", "", "", ":7: signing.key: cannot read " + filepath.Join(dir, "nowhere.key") + ": no such file or directory"},
		{"a public key", "signing:\n  key: ferry.pub\n", "", "", ":7: signing.key: " + filepath.Join(dir, "ferry.pub") + " holds no PEM private key"},
		{"a password without a key", "signing:\n  password: { env: COSIGN_PASSWORD }\n", "", "", ":7: signing.password: a password without signing.key"},
		{"a literal password", "signing:\n  key: ferry.key\n  password: hunter2\n", "", "", ":8: signing.password: want { env: NAME } or { file: PATH }"},
		{"unknown field", "signing:\n  keyfile: ferry.key\n", "", "", ":7: signing.keyfile: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(filepath.Join(dir, "ferry.yaml"), []byte(head+tt.signing+env))
			if tt.problem != "" {
				if err == nil || !strings.Contains(err.Error(), "ferry.yaml"+tt.problem) {
					t.Fatalf("Parse error = %v, want one containing %q", err, "ferry.yaml"+tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.Signing.Key != tt.key || c.Signing.Password.String() != tt.password {
				t.Errorf("Signing = %q, %q; want %q, %q", c.Signing.Key, c.Signing.Password.String(), tt.key, tt.password)
			}
		})
	}
}

package ferry

import (
	"slices"
	"testing"
)

func TestCommandEnv(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "TZ=UTC", "TMPDIR=/tmp",
		"GOPATH=/go", "GOCACHE=/cache", "GOPROXY=https://proxy.golang.org", "GOFLAGS=-mod=mod", "CGO_ENABLED=0",
		"HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost", "SSL_CERT_FILE=/etc/ssl/cert.pem",
		// ferry's own: never a commit's business
		"FERRY_WEBHOOK_SECRET=s3cret", "FERRY_TOKEN=ferry_abc", "DATABASE_URL=postgres://u:p@db/ferry",
		"AWS_SECRET_ACCESS_KEY=x", "FERRY_TEST_POSTGRES_URL=postgres://u:p@db/test", "GITHUB_TOKEN=ghp_x", "PGPASSWORD=p",
		"MALFORMED",
	}
	got := CommandEnv(environ, "FERRY_COMMIT=abc", "FERRY_IMAGE=reg/app:candidate-abc")
	want := []string{
		"PATH=/usr/bin", "HOME=/root", "LANG=C.UTF-8", "LC_ALL=C", "TZ=UTC", "TMPDIR=/tmp",
		"GOPATH=/go", "GOCACHE=/cache", "GOPROXY=https://proxy.golang.org", "GOFLAGS=-mod=mod", "CGO_ENABLED=0",
		"HTTPS_PROXY=http://proxy:3128", "no_proxy=localhost", "SSL_CERT_FILE=/etc/ssl/cert.pem",
		"FERRY_COMMIT=abc", "FERRY_IMAGE=reg/app:candidate-abc",
	}
	if !slices.Equal(got, want) {
		t.Errorf("CommandEnv =\n%q\nwant\n%q", got, want)
	}
}

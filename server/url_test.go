package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// TestURLOfPortZero: an environment whose balancer listens on port 0 is
// known, checked and shown at the port it got, not at port 0.
func TestURLOfPortZero(t *testing.T) {
	repo := newRepo(t, "testdata/tiny")
	yaml := strings.Replace(tinyConfig(repo.Dir, t.TempDir(), ""), "runtime: { local: { listen: 127.0.0.1:0 } }",
		"runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: [\"-listen\", \"{{.Addr}}\"] } }\n"+
			"    verify: [ { http: GET /version, expect: 200 } ]", 1)
	s := start(t, yaml, Options{})
	c := newClient(t, s)
	head := repo.Head()
	if _, err := c.Trigger(context.Background(), "master", ""); err != nil {
		t.Fatal(err)
	}
	waitBuild(t, s, head, 5*time.Minute)
	waitDeployed(t, c, "dev", head) // verified against the URL, else reverted
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	url := st.Environments[0].URL
	if strings.HasSuffix(url, ":0") || url == "" {
		t.Fatalf("dev's URL = %q, want the balancer's real port", url)
	}
	resp, err := http.Get(url + "/version")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), head) {
		t.Errorf("GET %s/version = %q, want commit %s", url, body, ferry.ShortSHA(head))
	}
}

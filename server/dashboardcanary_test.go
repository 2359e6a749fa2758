package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryhq/ferry"
)

// TestDashboardCanary drives a canary on the dashboard in a real headless
// Chromium against a real ferry whose prod releases through a canary (one
// long step at 20 %, judged every 100 ms, no baseline) on the local
// runtime: a releaser sees the running canary in prod's row — step,
// weight, each version's figures, the last verdict — follow requests sent
// to prod live (no reload), and pauses and aborts it with the buttons of
// prod's actions; the ledger records both with the token's name and the
// typed reason. A viewer sees the canary but no button, and a forged
// abort is refused. /metrics exports the running canary's series, which
// promtool accepts.
func TestDashboardCanary(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	artifacts := artifactDir(t)
	repo := newRepo(t, "testdata/tiny")
	runtime := `runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`
	yaml := strings.Replace(tinyConfig(repo.Dir, t.TempDir(), ""), "runtime: { local: { listen: 127.0.0.1:0 } }", runtime, 1) +
		"  prod:\n    from: dev\n    strategy: { canary: { steps: [ { weight: 20, for: 1h } ], baseline: false, analysis: { interval: 100ms, inconclusive: 1h } } }\n    " + runtime + "\n"
	s := start(t, yaml, Options{})
	ctx := context.Background()
	base := s.URL()
	cl := tokenClient(t, s, tokenFor(t, s, ferry.RoleAdmin))
	releaser, viewer := namedToken(t, s, "rel", ferry.RoleReleaser), tokenFor(t, s, ferry.RoleViewer)

	// A to prod straight (nothing ran before), then B through the canary.
	headA := repo.Head()
	waitDeployed(t, cl, "dev", headA)
	a, err := cl.Promote(ctx, "prod", "", "first")
	if err != nil {
		t.Fatal(err)
	}
	waitFinished(t, cl, deploymentOf(t, cl, a))
	repo.Write("b.txt", "b\n")
	headB := repo.CommitAll("change b")
	if _, err := cl.Trigger(ctx, "master", headB); err != nil {
		t.Fatal(err)
	}
	waitDeployed(t, cl, "dev", headB)
	a, err = cl.Promote(ctx, "prod", "", "through the canary")
	if err != nil {
		t.Fatal(err)
	}
	canary := deploymentOf(t, cl, a)

	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(artifacts, "dashboard-canary-"+name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
	waitJS := func(what, expr string, timeout time.Duration) {
		t.Helper()
		tctx, cancel := context.WithTimeout(browser, timeout+5*time.Second)
		defer cancel()
		if _, err := chromedp.Run(tctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			html, _ := chromedp.Run(browser, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("waiting for %s: %v\npage: %s", what, err, html)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(browser, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(browser, time.Minute)
		defer cancel()
		if err := chromedp.Do(tctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	signIn := func(secret string) {
		t.Helper()
		do("sign in",
			chromedp.Navigate(base+"/signin"),
			chromedp.WaitVisible(chromedp.ID("token")),
			chromedp.SendKeys(chromedp.ID("token"), secret),
			chromedp.Click(chromedp.ID("signin")),
			chromedp.WaitVisible(chromedp.ID("matrix")),
		)
	}

	// press gives a reason and presses a canary's button in one step of
	// the page's own script: the row is re-rendered at every judgement
	// (every 2 s), and a node chromedp found a moment earlier may be gone
	// by its click ("Could not find node with given id").
	press := func(reason, button string) {
		t.Helper()
		eval(fmt.Sprintf(`(() => { document.getElementById("reason-prod").value = %q; document.getElementById(%q).click(); return "" })()`, reason, button))
	}

	signIn(releaser)
	const row = `document.querySelector("#env-prod .canary")`
	waitJS("the running canary with a verdict", `(c => c && c.dataset.canaryState === "running" && c.dataset.weight === "20" && c.textContent.includes("last verdict: inconclusive"))(`+row+`)`, time.Minute)
	waitJS("its buttons", `!!document.getElementById("canary-pause-prod") && !!document.getElementById("canary-abort-prod")`, 30*time.Second)
	eval(`window.__ferryMarker = "no reload"; ""`)
	text := eval(row + `.textContent`)
	for _, want := range []string{"canary step 1 of 1 at 20%", "running", "last verdict: inconclusive", "too few requests"} {
		if !strings.Contains(text, want) {
			t.Errorf("canary panel %q, want it to say %q", text, want)
		}
	}
	// Requests to prod show up in the panel's figures, live.
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var prodURL string
	for _, e := range st.Environments {
		if e.Name == "prod" {
			prodURL = e.URL
		}
	}
	if prodURL == "" {
		t.Fatal("prod has no URL")
	}
	for range 50 {
		if resp, err := http.Get(prodURL + "/version"); err == nil {
			resp.Body.Close()
		}
	}
	// Each row's errors cell says "(errors of requests)".
	served := func(track string) string {
		return fmt.Sprintf(`/\(\d+ of [1-9]\d*\)/.test(document.querySelector('#env-prod .canary tr[data-track=%q]')?.textContent || "")`, track)
	}
	waitJS("the figures of both versions", served("stable")+" && "+served("canary"), 30*time.Second)

	shot("01-running")

	// /metrics exports the same canary, in a form promtool accepts.
	metrics := scrapeMetrics(t, s.URL(), viewer)
	for _, want := range []string{`ferry_canary_weight_percent{env="prod"} 20`, `ferry_canary_step{env="prod",state="running"} 1`,
		`ferry_canary_step_requests{env="prod",track="canary"} `, `ferry_canary_verdict{env="prod",outcome="inconclusive"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics during the canary lacks %s", want)
		}
	}
	cmd := exec.Command(promtool(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(metrics)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics during the canary: %v\n%s", err, out)
	}

	press("look closer", "canary-pause-prod")
	waitJS("the paused canary", `(c => c && c.dataset.canaryState === "paused" && !!document.getElementById("canary-resume-prod"))(`+row+`)`, 30*time.Second)
	waitJS("the pause's notice", `(document.querySelector("#notice")?.textContent || "").includes("The canary on prod is paused.")`, 10*time.Second)
	if got := eval(row + `.querySelector(".sub").textContent`); got != "paused by rel: look closer" {
		t.Errorf("paused canary's reason = %q", got)
	}
	shot("02-paused")
	if got := eval(`String(window.__ferryMarker)`); got != "no reload" {
		t.Errorf("the page was reloaded (marker %q)", got)
	}

	// A viewer sees the paused canary, and no button; a forged abort is
	// refused and changes nothing.
	do("sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))
	signIn(viewer)
	waitJS("the paused canary", `(c => c && c.dataset.canaryState === "paused")(`+row+`)`, 30*time.Second)
	if n := eval(`String(document.querySelectorAll('[id^="canary-"], [formaction*="/rollout/"]').length)`); n != "0" {
		t.Errorf("a viewer's canary panel has %s controls, want none", n)
	}
	forged := eval(`fetch("/envs/prod/rollout/abort", {method: "POST", headers: {"X-Ferry-Async": "1"}, body: new URLSearchParams({reason: "forged"})}).then(r => r.status + " " + r.statusText)`)
	if !strings.HasPrefix(forged, "403") {
		t.Errorf("a viewer's rollout abort from the page = %s, want 403", forged)
	}
	if d, err := cl.Deployment(ctx, canary); err != nil || d.State.Final() {
		t.Errorf("the canary's deployment after the viewer's forged abort = %+v, %v; want it still running", d, err)
	}

	// The releaser aborts it.
	do("sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))
	signIn(releaser)
	waitJS("the abort button", `!!document.getElementById("canary-abort-prod")`, 30*time.Second)
	eval(`window.__ferryMarker = "no reload"; ""`)
	press("not now", "canary-abort-prod")
	waitJS("the canary gone from prod's row and its buttons from the page", `!`+row+` && !document.querySelector('[id^="canary-"]')`, time.Minute)
	waitJS("prod back on A", fmt.Sprintf(`(r => r && r.dataset.commit === %q)(document.querySelector("#env-prod"))`, headA), 30*time.Second)
	if got := eval(`String(window.__ferryMarker)`); got != "no reload" {
		t.Errorf("the page was reloaded (marker %q)", got)
	}
	shot("03-aborted")
	d := waitEnded(t, cl, canary)
	if d.State != ferry.DeploymentFailed || !strings.Contains(d.Error, "by rel: not now") {
		t.Errorf("aborted canary's deployment = %s (%q), want failed by rel: not now", d.State, d.Error)
	}
}

// scrapeMetrics reads s's /metrics with secret.
func scrapeMetrics(t *testing.T, base, secret string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/ledger"
)

// TestDashboard drives the dashboard in a real headless Chromium against a
// real ferry with dev (from master) and prod (promoted from dev), the tiny
// app, and the local runtime:
//
//   - anyone not signed in sees only the sign-in page;
//   - a running build's log lines and step changes stream into the page,
//     and when the build is deployed the matrix shows dev on its commit and
//     digest, all without a reload (a marker set on window survives);
//   - a cross-origin form, sent by the same browser while signed in as a
//     releaser, is refused with a 403 page and changes nothing;
//   - a releaser's promote button rolls prod to a new RC release, and the
//     matrix, the diff, the history, prod's deployments-per-day chart and
//     the DORA figures follow without a reload; the
//     deployment records the token's name and the typed reason;
//   - a viewer gets no action button anywhere, and a forged POST from the
//     page is refused;
//   - in a narrow window the matrix becomes cards and nothing scrolls
//     sideways;
//   - without JavaScript (plain HTTP) the page holds the matrix.
//
// Full-page screenshots of each step go to $FERRY_TEST_ARTIFACTS (default
// artifacts/dashboard at the repository's root).
func TestDashboard(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	artifacts := artifactDir(t)

	repo := newRepo(t, "testdata/tiny")
	gate := newGate(t)
	runtime := `runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`
	yaml := withTest(tinyConfig(repo.Dir, t.TempDir(), ""), gate.command())
	yaml = strings.Replace(yaml, "runtime: { local: { listen: 127.0.0.1:0 } }", runtime, 1) +
		"  prod:\n    branch: release\n    from: dev\n    tags: [live]\n    " + runtime + "\n"
	s := start(t, yaml, Options{})
	ctx := context.Background()
	commit := repo.Head()
	base := s.URL()

	// Tokens made through the API by an admin, as a person would.
	admin := newClient(t, s)
	secret := map[ferry.Role]string{}
	for name, role := range map[string]ferry.Role{"rel": ferry.RoleReleaser, "eye": ferry.RoleViewer} {
		nt, err := admin.CreateToken(ctx, name, role, "dashboard test")
		if err != nil {
			t.Fatalf("create token %s: %v", name, err)
		}
		secret[role] = nt.Secret
	}

	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(artifacts, "dashboard-"+name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(browser, time.Minute)
		defer cancel()
		if err := chromedp.Do(tctx, actions...); err != nil {
			shot("failed")
			t.Fatalf("%s: %v", what, err)
		}
	}
	// waitJS waits until the expression is true in the page.
	waitJS := func(what, expr string, timeout time.Duration) {
		t.Helper()
		tctx, cancel := context.WithTimeout(browser, timeout+5*time.Second)
		defer cancel()
		if _, err := chromedp.Run(tctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			html, _ := chromedp.Run(browser, chromedp.OuterHTML(chromedp.CSS("main")))
			shot("failed")
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
	const marker = `window.__ferryMarker`
	setMarker := func() { eval(marker + ` = "no reload"; ` + marker) }
	wantMarker := func(step string) {
		t.Helper()
		if got := eval(`String(` + marker + `)`); got != "no reload" {
			t.Errorf("after %s, %s = %q, want it kept (the page was reloaded)", step, marker, got)
		}
	}
	signIn := func(role ferry.Role) {
		t.Helper()
		do("sign in as "+string(role),
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.ID("token")),
			chromedp.SendKeys(chromedp.ID("token"), secret[role]),
			chromedp.Click(chromedp.ID("signin")),
			chromedp.WaitVisible(chromedp.ID("matrix")),
		)
	}

	// Not signed in: the sign-in page, and nothing else.
	do("open the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	if loc := eval(`location.pathname`); loc != "/signin" {
		t.Errorf("the dashboard without a session is at %s, want /signin", loc)
	}
	if n := eval(`String(document.querySelectorAll("#matrix, #pipelines").length)`); n != "0" {
		t.Errorf("the sign-in page shows %s dashboard parts, want none", n)
	}
	shot("01-signin")

	// A running build streams its log and steps; its deployment fills
	// the matrix. No reload in between.
	signIn(ferry.RoleReleaser)
	waitJS("the build's log to show the test waiting",
		`(document.querySelector("#pipelines pre.log[data-streamed]")?.textContent || "").includes("gate-waiting")`, 3*time.Minute)
	waitJS("the test step to run", `!!document.querySelector('#pipelines li[data-step="test"].s-running')`, 30*time.Second)
	setMarker()
	shot("02-build-running")
	gate.release(t)
	waitJS("the log to stream the test passing", `(document.querySelector("#pipelines pre.log").textContent || "").includes("gate-passed")`, time.Minute)
	waitJS("the steps to succeed", `!!document.querySelector('#pipelines li[data-step="tag"].s-succeeded')`, 2*time.Minute)
	waitJS("dev to run the build", fmt.Sprintf(`(r => r && r.dataset.commit === %q && r.dataset.state === "healthy")(document.querySelector("#env-dev"))`, commit), 2*time.Minute)
	wantMarker("the build and its deployment")
	b := waitBuild(t, s, commit, time.Minute)
	cur, err := s.Ledger().Current(ctx, "tiny", "dev")
	if err != nil || cur.Digest != b.Digest {
		t.Fatalf("dev's current deployment = %+v, %v; want build %d's digest %s", cur, err, b.ID, b.Digest)
	}
	// (a) The matrix: dev on the commit and digest, prod empty.
	row := func(env string) []string {
		t.Helper()
		raw := eval(fmt.Sprintf(`(r => [r.dataset.commit, r.dataset.digest, r.dataset.release, r.dataset.state,
			r.querySelector(".commit").textContent.trim(), r.querySelector(".commit code")?.title || "",
			r.querySelector(".digest").textContent.trim(), r.querySelector(".release").textContent.trim()].join("|"))(document.querySelector("#env-%s"))`, env))
		return strings.Split(raw, "|")
	}
	if got, want := row("dev"), []string{commit, b.Digest, "", "healthy", ferry.ShortSHA(commit), commit, b.Digest[7:19], "—"}; !slices.Equal(got, want) {
		t.Errorf("matrix row dev = %q, want %q", got, want)
	}
	if got, want := row("prod"), []string{"", "", "", "empty", "—", "", "—", "—"}; !slices.Equal(got, want) {
		t.Errorf("matrix row prod = %q, want %q", got, want)
	}
	waitJS("the diff to list the commit waiting for prod",
		fmt.Sprintf(`(document.querySelector('.diff[data-to="prod"]')?.textContent || "").includes(%q)`, ferry.ShortSHA(commit)), 30*time.Second)
	shot("03-dev-deployed")

	// (d) Cross-origin: a page on another origin posts a promotion with
	// this very browser, signed in as a releaser. ferry refuses it.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>evil</title><form method="post" action="%s/envs/prod/promote">
<input name="reason" value="csrf"><button id="go" type="submit">win a prize</button></form>`, base)
	}))
	defer evil.Close()
	do("open the other origin's page", chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.ID("go")))
	tctx, cancel := context.WithTimeout(browser, time.Minute)
	resp, err := chromedp.RunResponse(tctx, chromedp.Click(chromedp.ID("go")))
	cancel()
	if err != nil {
		t.Fatalf("submit the cross-origin form: %v", err)
	}
	text := eval(`document.body.innerText`)
	if resp.Status != http.StatusForbidden || !strings.Contains(text, "Cross-origin request refused") || !strings.Contains(text, "nothing was changed") {
		t.Errorf("cross-origin promotion from the browser = %d %q, want 403 saying it was refused", resp.Status, text)
	}
	shot("04-cross-origin-refused")
	if ds, err := s.Ledger().Deployments(ctx, ledger.DeploymentFilter{Env: "prod"}); err != nil || len(ds) != 0 {
		t.Errorf("prod deployments after the cross-origin post = %d, %v; want none", len(ds), err)
	}
	// And over plain HTTP, with a releaser's session cookie.
	for _, h := range []map[string]string{
		{"Origin": "http://evil.example"},
		{"Origin": evil.URL},
		{"Sec-Fetch-Site": "same-site", "Origin": evil.URL},
		{"Sec-Fetch-Site": "cross-site"},
		{}, // says nothing about where it comes from
	} {
		status, body := dashPost(t, base+"/envs/prod/promote", secret[ferry.RoleReleaser], h, "reason=csrf")
		if status != http.StatusForbidden || !strings.Contains(body, "Cross-origin request refused") {
			t.Errorf("POST /envs/prod/promote with %v = %d, want 403 Cross-origin request refused", h, status)
		}
	}
	if ds, err := s.Ledger().Deployments(ctx, ledger.DeploymentFilter{Env: "prod"}); err != nil || len(ds) != 0 {
		t.Errorf("prod deployments after cross-origin posts = %d, %v; want none", len(ds), err)
	}

	// (b) The releaser promotes; the page follows without a reload.
	do("open the dashboard again", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("promote-prod")))
	setMarker()
	// Enter in a field releases nothing: a release takes its button. The
	// page's POSTs are counted by wrapping fetch (the script sends a form
	// at once, in its submit handler).
	eval(`window.__posts = []; window.__fetch = window.fetch;
		window.fetch = (u, o) => { if (o && o.method === "POST") window.__posts.push(String(u)); return window.__fetch(u, o); }; ""`)
	do("press Enter in the reason field", chromedp.SendKeys(chromedp.ID("reason-prod"), "enter\n"))
	if posts := eval(`JSON.stringify(window.__posts)`); posts != "[]" {
		t.Errorf("Enter in the reason field posted %s, want nothing", posts)
	}
	wantMarker("Enter in the reason field")
	eval(`window.fetch = window.__fetch; document.getElementById("reason-prod").value = ""`)
	do("promote prod",
		chromedp.SendKeys(chromedp.ID("reason-prod"), "browser release"),
		chromedp.Click(chromedp.ID("promote-prod")),
	)
	waitJS("the promotion's notice", `(document.querySelector("#notice")?.textContent || "").includes("Promotion of prod to RC")`, time.Minute)
	waitJS("prod to run the new release", fmt.Sprintf(
		`(r => r && r.dataset.release.startsWith("RC") && r.dataset.commit === %q && r.dataset.digest === %q && r.dataset.state === "healthy")(document.querySelector("#env-prod"))`,
		commit, b.Digest), 2*time.Minute)
	waitJS("the diff to be empty", `document.querySelector('.diff[data-to="prod"]')?.dataset.ahead === "0"`, 30*time.Second)
	waitJS("prod's history to show the promotion", `(document.querySelector('.hist[data-env="prod"]')?.textContent || "").includes("browser release")`, 30*time.Second)
	waitJS("prod's DORA figures to count the release",
		`(document.querySelector('#dora tr[data-env="prod"] td[data-label="Deployments per day"]')?.textContent || "").includes("(1)")`, 30*time.Second)
	waitJS("prod's chart to draw today's bar full height",
		`(f => f && f.dataset.deployments === "1" && f.querySelector("g.day:last-of-type rect.all").getBBox().height === 40)(document.querySelector('figure.chart[data-env="prod"]'))`, 30*time.Second)
	wantMarker("the promotion")
	shot("05-promoted")
	prod, err := s.Ledger().Current(ctx, "tiny", "prod")
	if err != nil {
		t.Fatal(err)
	}
	if prod.Kind != ferry.DeployPromote || prod.Actor != "rel" || prod.Reason != "browser release" || prod.Digest != b.Digest || !strings.HasPrefix(prod.Release, "RC") {
		t.Errorf("prod's deployment = %s by %q (%q) of %s as %q; want a promotion by rel (browser release) of %s as RC…",
			prod.Kind, prod.Actor, prod.Reason, prod.Digest, prod.Release, b.Digest)
	}
	if got := row("prod"); got[2] != prod.Release || got[7] != prod.Release {
		t.Errorf("matrix row prod = %q, want release %s", got, prod.Release)
	}

	// (c) A viewer: no action anywhere, and a forged one is refused.
	do("sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))
	signIn(ferry.RoleViewer)
	waitJS("the matrix", `!!document.querySelector("#env-prod")`, 30*time.Second)
	actionsJS := `String(document.querySelectorAll('#actions, form[action^="/envs/"], button[formaction], [id^="promote-"], [id^="rollback-"], [id^="lock-"], [id^="unlock-"]').length)`
	if n := eval(actionsJS); n != "0" {
		t.Errorf("a viewer's page has %s action elements, want none", n)
	}
	if html := eval(`document.documentElement.outerHTML`); strings.Contains(html, "/promote") || strings.Contains(html, "/rollback") || strings.Contains(html, "/lock") {
		t.Errorf("a viewer's page names an action URL")
	}
	forged := eval(`fetch("/envs/prod/rollback", {method: "POST", headers: {"X-Ferry-Async": "1"}, body: new URLSearchParams({reason: "forged"})}).then(r => r.status + " " + r.statusText)`)
	if !strings.HasPrefix(forged, "403") {
		t.Errorf("a viewer's rollback from the page = %s, want 403", forged)
	}
	shot("06-viewer")
	// A narrow window: the matrix becomes one card per environment.
	do("narrow the window", chromedp.EmulateViewport(390, 844))
	waitJS("the matrix as cards", `getComputedStyle(document.querySelector("#env-dev td.commit")).display === "block"`, 10*time.Second)
	if w := eval(`String(document.documentElement.scrollWidth <= window.innerWidth)`); w != "true" {
		t.Errorf("in a 390px window the page scrolls sideways")
	}
	shot("07-narrow")
	do("widen the window", chromedp.EmulateReset())
	if ds, _ := s.Ledger().Deployments(ctx, ledger.DeploymentFilter{Env: "prod"}); len(ds) != 1 {
		t.Errorf("prod has %d deployments after the viewer's attempt, want the one promotion", len(ds))
	}

	// (e) Without JavaScript: plain HTTP gets the whole matrix.
	status, body := dashGet(t, base+"/", secret[ferry.RoleViewer])
	for _, want := range []string{
		`<table class="matrix`, `id="env-dev"`, `data-commit="` + commit + `"`, `data-digest="` + b.Digest + `"`,
		`<code>` + prod.Release + `</code>`, `id="pipelines"`, `id="history"`, `id="notifications"`, `No notifications yet.`,
	} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET / (no JavaScript) = %d, want 200 with %s", status, want)
		}
	}
	if status, _ := dashGet(t, base+"/", ""); status != http.StatusSeeOther {
		t.Errorf("GET / without a session = %d, want 303 to the sign-in page", status)
	}
}

// newBrowser starts a headless Chromium (FERRY_TEST_CHROMIUM, else
// /usr/bin/chromium) for the test and returns its tab's context. Without
// one the test is skipped, or fails when FERRY_TEST_REQUIRE names chromium.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("FERRY_TEST_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		testenv.Unavailable(t, "chromium", "no Chromium at %s (set FERRY_TEST_CHROMIUM): %v", path, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	return ctx
}

// artifactDir is where screenshots go: $FERRY_TEST_ARTIFACTS, else
// artifacts/dashboard at the repository's root (ignored by git).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FERRY_TEST_ARTIFACTS")
	if dir == "" {
		root, err := filepath.Abs("..")
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "artifacts", "dashboard")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// dashNoRedirect is a client that shows redirects instead of following them.
var dashNoRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func dashGet(t *testing.T, u, session string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dashSend(t, req, session)
}

func dashPost(t *testing.T, u, session string, header map[string]string, form string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return dashSend(t, req, session)
}

func dashSend(t *testing.T, req *http.Request, session string) (int, string) {
	t.Helper()
	if session != "" {
		req.AddCookie(&http.Cookie{Name: "ferry_session", Value: session})
	}
	resp, err := dashNoRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

package dashboard

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
)

// Cookies. The session cookie holds the API token's secret: HttpOnly, so
// no script reads it, and SameSite=Strict, so no other site's page sends
// it. The flash cookie carries the outcome of an action across the
// redirect that follows it (POST, redirect, GET).
const (
	sessionCookie = "ferry_session"
	flashCookie   = "ferry_flash"
)

// Why a session ended, shown on the sign-in page. Only these codes are
// accepted from the query, so the page never repeats what a link says.
var signInReasons = map[string]string{
	"revoked":   "Your API token was revoked. Sign in with another one.",
	"unknown":   "Your API token is no longer known. Sign in with another one.",
	"signedout": "Signed out.",
}

// who returns the token of r's session: nil and why ("none", "unknown",
// "revoked") when there is none, and an error when the ledger cannot say.
func (d *Dashboard) who(r *http.Request) (*ferry.Token, string, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, "none", nil
	}
	tok, err := d.cfg.Tokens(r.Context(), auth.Hash(c.Value))
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		return nil, "unknown", nil
	case err != nil:
		return nil, "", err
	case tok.Revoked():
		return nil, "revoked", nil
	}
	return tok, "", nil
}

// signedIn returns r's token, or answers r itself and returns false when
// r has no valid session: a page request is sent to the sign-in page; a
// fragment, stream or action gets 401.
func (d *Dashboard) signedIn(w http.ResponseWriter, r *http.Request, page bool) (*ferry.Token, bool) {
	tok, why, err := d.who(r)
	if err != nil {
		d.cfg.Logger.Error("dashboard: look up session token", "err", err)
		d.errorPage(w, r, http.StatusServiceUnavailable, "Try again", "ferry cannot check your API token now; try again in a moment.")
		return nil, false
	}
	if tok != nil {
		return tok, true
	}
	if why != "none" {
		clearCookie(w, r, sessionCookie)
	}
	if page {
		to := "/signin"
		if why != "none" {
			to += "?why=" + why
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
		return nil, false
	}
	d.errorPage(w, r, http.StatusUnauthorized, "Sign in", "This needs a signed-in API token: sign in at /signin.")
	return nil, false
}

type signInView struct {
	base
	Message string
	Error   string
}

func (d *Dashboard) signInPage(w http.ResponseWriter, r *http.Request) {
	if tok, _, err := d.who(r); err == nil && tok != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	v := signInView{base: d.base(nil), Message: signInReasons[r.URL.Query().Get("why")]}
	d.html(w, http.StatusOK)
	d.render(w, r, "signin.html", v)
}

// signIn checks the pasted token and keeps it in the session cookie.
func (d *Dashboard) signIn(w http.ResponseWriter, r *http.Request) {
	if !d.sameOrigin(w, r) {
		return
	}
	refuse := func(status int, msg string) {
		d.html(w, status)
		d.render(w, r, "signin.html", signInView{base: d.base(nil), Error: msg})
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusBadRequest, "The form could not be read; try again.")
		return
	}
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	if secret == "" {
		refuse(http.StatusBadRequest, "Paste an API token (ferry token create --role viewer makes one).")
		return
	}
	tok, err := d.cfg.Tokens(r.Context(), auth.Hash(secret))
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		d.cfg.Logger.Warn("dashboard sign-in refused: unknown token")
		refuse(http.StatusUnauthorized, "Unknown API token.")
		return
	case err != nil:
		d.cfg.Logger.Error("dashboard sign-in: look up token", "err", err)
		refuse(http.StatusServiceUnavailable, "ferry cannot check the API token now; try again in a moment.")
		return
	case tok.Revoked():
		d.cfg.Logger.Warn("dashboard sign-in refused: revoked token", "token", tok.Name)
		refuse(http.StatusUnauthorized, fmt.Sprintf("API token %q was revoked.", tok.Name))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: secret, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	d.cfg.Logger.Info("dashboard sign-in", "token", tok.Name, "role", tok.Role)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (d *Dashboard) signOut(w http.ResponseWriter, r *http.Request) {
	if !d.sameOrigin(w, r) {
		return
	}
	clearCookie(w, r, sessionCookie)
	http.Redirect(w, r, "/signin?why=signedout", http.StatusSeeOther)
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// crossOrigin says why r is not from the dashboard's own origin, or ""
// when it is. A browser says where a request comes from in Sec-Fetch-Site
// (every current browser) or Origin (older ones, and every POST); a request
// that says neither is refused too, since the dashboard's forms are only
// ever sent by browsers. The Origin's host must be the Host the request
// was sent to.
func crossOrigin(r *http.Request) string {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		if site == "same-origin" {
			return ""
		}
		return fmt.Sprintf("it was sent from another site or origin (Sec-Fetch-Site: %s)", site)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return "it does not say where it comes from (no Origin or Sec-Fetch-Site header)"
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Host != r.Host {
		return "it was sent from another origin"
	}
	return ""
}

// sameOrigin refuses r with a 403 page unless it comes from the
// dashboard's origin: the check against cross-site request forgery that
// every POST passes.
func (d *Dashboard) sameOrigin(w http.ResponseWriter, r *http.Request) bool {
	why := crossOrigin(r)
	if why == "" {
		return true
	}
	d.cfg.Logger.Warn("dashboard refused a cross-origin request", "method", r.Method, "path", r.URL.Path,
		"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
	d.errorPage(w, r, http.StatusForbidden, "Cross-origin request refused",
		"ferry refused this request because "+why+". Changes are accepted only from ferry's own dashboard pages; nothing was changed.")
	return false
}

// notice is the outcome of an action.
type notice struct {
	OK   bool   `json:"ok"`
	Text string `json:"text"`
}

func setFlash(w http.ResponseWriter, r *http.Request, n notice) {
	if len(n.Text) > 1000 {
		n.Text = n.Text[:1000] + "…"
	}
	b, _ := json.Marshal(n)
	http.SetCookie(w, &http.Cookie{
		Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/", MaxAge: 60,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// takeFlash returns the flash notice and clears it.
func takeFlash(w http.ResponseWriter, r *http.Request) *notice {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	clearCookie(w, r, flashCookie)
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return nil
	}
	var n notice
	if json.Unmarshal(b, &n) != nil || n.Text == "" {
		return nil
	}
	return &n
}

func (d *Dashboard) html(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry"
)

var (
	appName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`) })
	envName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9-]*$`) })
	varName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	// headerName is an HTTP field name (RFC 9110 token).
	headerName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$") })
	jsonField  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[^.\s]+(\.[^.\s]+)*$`) })
	shortTag   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{12}$`) })
	dnsLabel   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`) })
	hostName   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`) })
)

// reservedTag explains why s may not be used as a moving tag, or "".
func reservedTag(s string) string {
	switch {
	case strings.HasPrefix(s, "sha-"):
		return "is reserved: sha-… tags name builds"
	case shortTag().MatchString(s):
		return "is reserved: 12-hex tags name builds"
	}
	return ""
}

// dnsSubdomain reports whether s is a Kubernetes object name.
func dnsSubdomain(s string) bool {
	if len(s) > 253 || s == "" {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !dnsLabel().MatchString(l) {
			return false
		}
	}
	return true
}

// branchProblem explains why s is not a usable branch name (the rules of
// git check-ref-format for a branch), or returns "".
func branchProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case strings.HasPrefix(s, "refs/"):
		return fmt.Sprintf("want a branch name like %q, not a ref", strings.TrimPrefix(strings.TrimPrefix(s, "refs/"), "heads/"))
	case s == "@" || s == "HEAD":
		return fmt.Sprintf("%q is not a branch", s)
	case strings.HasPrefix(s, "-"):
		return "must not start with a dash"
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//"):
		return "has an empty path component"
	case strings.HasSuffix(s, ".") || strings.HasSuffix(s, ".lock"):
		return `must not end with "." or ".lock"`
	case strings.Contains(s, "..") || strings.Contains(s, "@{"):
		return `must not contain ".." or "@{"`
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`~^:?*[\`, r) {
			return fmt.Sprintf("must not contain %q", r)
		}
	}
	for _, c := range strings.Split(s, "/") {
		if strings.HasPrefix(c, ".") {
			return `a path component must not start with "."`
		}
	}
	return ""
}

// addrProblem explains why s is not a host:port listen address, or "".
func addrProblem(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not a host:port address", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Sprintf("%q has an invalid port", s)
	}
	if host != "" && net.ParseIP(host) == nil && !hostName().MatchString(host) {
		return fmt.Sprintf("%q has an invalid host", s)
	}
	return ""
}

// loopback reports whether a listen address only accepts local clients.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// overlap reports whether two listen addresses would fight for one socket.
func overlap(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	if wildcard(ha) || wildcard(hb) {
		return true
	}
	return canonicalHost(ha) == canonicalHost(hb)
}

func wildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

func canonicalHost(h string) string {
	if h == "localhost" {
		return "127.0.0.1"
	}
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return strings.ToLower(h)
}

// urlProblem explains why s is not an absolute http(s) URL, or "".
func urlProblem(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Sprintf("%q is not an absolute http:// or https:// URL", s)
	}
	return ""
}

var sampleData = ferry.TemplateData{
	Commit:      "0123456789abcdef0123456789abcdef01234567",
	ShortCommit: "0123456789ab",
	Branch:      "master",
	Time:        time.Date(2025, 12, 31, 23, 59, 58, 0, time.UTC),
}

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// redactURL masks the password of a URL-looking string; other strings are
// returned unchanged.
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	return u.Redacted()
}

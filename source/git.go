package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Error is a git command that failed. Its text names the command (with any
// password in a URL masked) and git's trimmed standard error.
type Error struct {
	Args   []string // git's arguments, credentials masked
	Stderr string   // git's standard error, trimmed, credentials masked
	Err    error    // the exit status, or a timeout
	// retryable marks failures that may go away by themselves: the
	// remote is unreachable, refuses us, or the command timed out.
	retryable bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("git")
	for _, a := range e.Args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// errNotFetched is returned by reads before the first successful Fetch.
var errNotFetched = errors.New("has not been fetched yet")

// IsRetryable reports whether err is a failure that may go away if the same
// call is made again later: an unreachable or refusing remote, a network
// error, a timed-out git command, or a read before the first fetch. Bad
// revisions (ferry.ENOTFOUND) and caller cancellation are not retryable.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errNotFetched) {
		return true
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.retryable
	}
	return false
}

// inheritedGitEnv are variables that would point git at another repository
// or change how it finds objects, for example when ferry runs inside a git
// hook. They are removed from the environment of every git command.
var inheritedGitEnv = []string{
	"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
	"GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH", "GIT_COMMON_DIR",
	"GIT_NAMESPACE", "GIT_PREFIX", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
}

// gitEnv is the environment for git: the process's own (so the user's ssh
// agent, HOME with its git and ssh configuration, and credential helpers
// work) minus repository-selecting variables, with prompts disabled and
// messages in English so they can be classified.
func gitEnv() []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := name == "LC_ALL" || name == "LANGUAGE" || name == "GIT_TERMINAL_PROMPT" || name == "GCM_INTERACTIVE"
		for _, g := range inheritedGitEnv {
			if name == g {
				drop = true
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return append(out,
		"GIT_TERMINAL_PROMPT=0", // never ask for a user name or password
		"GCM_INTERACTIVE=never", // Git Credential Manager: no dialogs either
		"LC_ALL=C", "LANGUAGE=C",
	)
}

// maxStderr bounds how much of git's standard error an Error keeps.
const maxStderr = 2000

// run runs git with args in dir (may be ""), with a timeout, no standard
// input and no controlling terminal, and returns its standard output. The
// redact function masks credentials in the arguments and stderr it reports.
func run(ctx context.Context, timeout time.Duration, dir string, redact func(string) string, args ...string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	cmd.Stdin = nil // /dev/null: git never reads the user's terminal
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	detach(cmd) // own session: ssh cannot open /dev/tty to ask anything
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	// Show the command without the global options that precede it
	// (-c settings, --git-dir): the subcommand is what tells the story.
	shown := args
	for len(shown) > 0 {
		if shown[0] == "-c" && len(shown) > 1 {
			shown = shown[2:]
		} else if strings.HasPrefix(shown[0], "--git-dir=") {
			shown = shown[1:]
		} else {
			break
		}
	}
	shown = slices.Clone(shown)
	for i, a := range shown {
		shown[i] = redact(a)
	}
	e := &Error{Args: shown, Stderr: redact(trimStderr(stderr.String())), Err: err}
	switch {
	case ctx.Err() != nil:
		// The caller gave up; say so plainly, not as a git failure.
		e.Err = ctx.Err()
	case cctx.Err() != nil:
		e.Err = fmt.Errorf("timed out after %s", timeout)
		e.retryable = true
	}
	return nil, e
}

// accessHint is the advice git prints after every failure to read a
// remote; it says nothing the message before it does not.
const accessHint = "Please make sure you have the correct access rights and the repository exists."

// labelled matches a line that starts a message: "fatal: …", "ssh: …".
var labelled = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z-]+: `) })

// trimStderr makes git's message one line: blank lines and the access hint
// dropped, a line that starts in lower case joined to the one before it
// with a space (unless it starts with a label such as "fatal: "), others
// with "; ". It keeps at most maxStderr bytes.
func trimStderr(s string) string {
	var lines []string
	for l := range strings.Lines(s) {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
		case len(lines) > 0 && l[0] >= 'a' && l[0] <= 'z' && !labelled().MatchString(l):
			lines[len(lines)-1] += " " + l
		default:
			lines = append(lines, l)
		}
	}
	lines = slices.DeleteFunc(lines, func(l string) bool { return l == accessHint })
	s = strings.Join(lines, "; ")
	if len(s) > maxStderr {
		s = s[:maxStderr] + " …"
	}
	return s
}

// redactURL returns raw with any password in it replaced by "xxxxx".
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); !ok {
		return raw
	}
	return u.Redacted()
}

// redacter returns a function that masks the password of rawURL (if it has
// one) wherever it appears in a string.
func redacter(rawURL string) func(string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return func(s string) string { return s }
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return func(s string) string { return s }
	}
	// The password as written in the URL (percent-encoded) and decoded.
	_, written, _ := strings.Cut(u.User.String(), ":")
	forms := []string{written, pw, url.QueryEscape(pw)}
	return func(s string) string {
		for _, f := range forms {
			s = strings.ReplaceAll(s, f, "xxxxx")
		}
		return s
	}
}

package ledger

import (
	"strings"
	"unicode/utf8"

	"github.com/ferryhq/ferry"
)

// What the ledger accepts as text is decided here, once, for every engine.
// There are two kinds of strings:
//
//   - keys name something exactly and are compared in queries: apps,
//     environments, branches, commits, releases, event kinds, step and
//     token names, webhook delivery ids. A key with a NUL byte or invalid
//     UTF-8, or longer than its limit, is refused with EINVALID, in a write
//     as in a lookup or a filter (PostgreSQL cannot even compare such
//     text, SQLite would store it; both engines answer the same refusal).
//   - free text says something to people: actors, authors, commit
//     subjects, reasons, messages, errors, log lines. It is kept rather
//     than refused: CleanText replaces NUL and invalid UTF-8 by U+FFFD,
//     and text over its limit is cut on a UTF-8 boundary and ends with
//     TruncatedMark, the whole within the limit (StoreText).
//
// Limits are in bytes of UTF-8.
const (
	MaxName    = 255      // keys: app, environment, event kind, trigger, step and token names, delivery ids and providers
	MaxRef     = 1024     // keys: branch, release, commit, image and digest references
	MaxPerson  = 256      // free text: actor, author, created by
	MaxSubject = 1024     // free text: a commit's subject line
	MaxText    = 8 << 10  // free text: reasons, messages, errors
	MaxLogLine = 64 << 10 // free text: one log line
)

// TruncatedMark ends free text that StoreText cut to its limit.
const TruncatedMark = "…[truncated]"

// CheckText refuses s unless it is valid UTF-8 without NUL bytes; what
// names s in the message ("query parameter branch", "token name").
func CheckText(what, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return ferry.Errorf(ferry.EINVALID, "%s contains a NUL byte", what)
	}
	if !utf8.ValidString(s) {
		return ferry.Errorf(ferry.EINVALID, "%s is not valid UTF-8", what)
	}
	return nil
}

// CheckKey refuses a key (see above) that CheckText refuses or that is
// longer than most bytes.
func CheckKey(what, s string, most int) error {
	if err := CheckText(what, s); err != nil {
		return err
	}
	if len(s) > most {
		return ferry.Errorf(ferry.EINVALID, "%s is %d bytes long, more than the %d allowed", what, len(s), most)
	}
	return nil
}

// Key is one key of an input for CheckKeys: its name in messages, its
// value and its limit.
type Key struct {
	What  string
	Value string
	Most  int
}

// CheckKeys is CheckKey of each key in turn; the first refusal is the
// error.
func CheckKeys(keys ...Key) error {
	for _, k := range keys {
		if err := CheckKey(k.What, k.Value, k.Most); err != nil {
			return err
		}
	}
	return nil
}

// StoreText is free text as the ledger stores it: CleanText, then cut to at
// most most bytes on a UTF-8 boundary, ending with TruncatedMark when cut.
// StoreText of its own result changes nothing.
func StoreText(s string, most int) string {
	s = CleanText(s)
	if len(s) <= most {
		return s
	}
	cut := max(most-len(TruncatedMark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + TruncatedMark
}

// Check refuses a filter whose keys no build could have (CheckKey).
func (f BuildFilter) Check() error {
	if err := CheckKeys(Key{"app", f.App, MaxName}, Key{"branch", f.Branch, MaxRef}); err != nil {
		return err
	}
	for _, st := range f.States {
		if err := CheckKey("build state", string(st), MaxName); err != nil {
			return err
		}
	}
	return nil
}

// Check refuses a filter whose keys no deployment could have (CheckKey).
func (f DeploymentFilter) Check() error {
	if err := CheckKeys(Key{"app", f.App, MaxName}, Key{"environment", f.Env, MaxName},
		Key{"commit", f.Commit, MaxRef}, Key{"digest", f.Digest, MaxRef}, Key{"release", f.Release, MaxRef}); err != nil {
		return err
	}
	for _, k := range f.Kinds {
		if err := CheckKey("deployment kind", string(k), MaxName); err != nil {
			return err
		}
	}
	for _, st := range f.States {
		if err := CheckKey("deployment state", string(st), MaxName); err != nil {
			return err
		}
	}
	return nil
}

// Check refuses a filter whose keys no event could have (CheckKey).
func (f EventFilter) Check() error {
	return CheckKeys(Key{"app", f.App, MaxName}, Key{"environment", f.Env, MaxName}, Key{"event kind", f.Kind, MaxName})
}

// CheckEnv refuses the app and environment of a lookup (Current, LockOf,
// Unlock) that no row could have.
func CheckEnv(app, env string) error {
	return CheckKeys(Key{"app", app, MaxName}, Key{"environment", env, MaxName})
}

// CheckCommit refuses the app and commit of a lookup (BuildByCommit,
// Quarantined) that no row could have.
func CheckCommit(app, commit string) error {
	return CheckKeys(Key{"app", app, MaxName}, Key{"commit", commit, MaxRef})
}

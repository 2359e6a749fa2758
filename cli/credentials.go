package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryhq/ferry"
)

// The credentials file keeps the CLI's API tokens, one per server URL, so
// that nobody copies a secret by hand: `ferry demo` and `ferry token create
// --save` write it, every client command reads it. It is
// $XDG_CONFIG_HOME/ferry/credentials.json (~/.config/ferry/… without
// XDG_CONFIG_HOME), mode 0600 in a 0700 directory:
//
//	{
//	  "servers": {
//	    "http://127.0.0.1:7070": {"name": "demo-admin", "token": "ferry_…"}
//	  }
//	}
type credentials struct {
	Servers map[string]credential `json:"servers"`
}

type credential struct {
	Name  string `json:"name,omitempty"` // the token's name, for people reading the file
	Token string `json:"token"`
}

// credentialsPath is where the credentials file is. A relative
// XDG_CONFIG_HOME is ignored, as the XDG specification asks.
func credentialsPath() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("credentials file: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "ferry", "credentials.json"), nil
}

// readCredentials reads the file at path; a missing file holds nothing.
func readCredentials(path string) (*credentials, error) {
	c := &credentials{Servers: map[string]credential{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("credentials file %s: %v (fix or remove it)", path, err)
	}
	if c.Servers == nil {
		c.Servers = map[string]credential{}
	}
	return c, nil
}

// saveCredential stores the token secret (named name) for server in the
// file at path, keeping every other server's entry. The file is replaced
// atomically and is readable by its owner only.
func saveCredential(path, server, name, secret string) error {
	c, err := readCredentials(path)
	if err != nil {
		return err
	}
	c.Servers[serverKey(server)] = credential{Name: name, Token: secret}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*.json") // mode 0600
	if err != nil {
		return fmt.Errorf("credentials file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("credentials file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("credentials file: %w", err)
	}
	return nil
}

// serverKey is how a server URL is written in the credentials file: scheme
// and host in lower case, no trailing slash.
func serverKey(server string) string {
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || u.Host == "" {
		return strings.TrimRight(server, "/")
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return u.String()
}

// findToken returns the API token for server: flag (--token) when set,
// else FERRY_TOKEN, else the credentials file's entry for server, else "".
func findToken(flag, server string) (string, error) {
	return findTokenIn(flag, server, "")
}

// findTokenIn is findToken reading the credentials file at path (empty:
// the default one, credentialsPath).
func findTokenIn(flag, server, path string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if t := os.Getenv("FERRY_TOKEN"); t != "" {
		return t, nil
	}
	if path == "" {
		var err error
		if path, err = credentialsPath(); err != nil {
			return "", nil // no home directory: no file to read
		}
	}
	c, err := readCredentials(path)
	if err != nil {
		return "", err
	}
	return c.Servers[serverKey(server)].Token, nil
}

// explainUnauthorized adds to a refusal for want of a valid token where the
// CLI looks for one.
func explainUnauthorized(err error) error {
	if ferry.ErrorCode(err) != ferry.EUNAUTHORIZED {
		return err
	}
	where := "the credentials file"
	if path, perr := credentialsPath(); perr == nil {
		where = path
	}
	return fmt.Errorf("%w\n(the CLI sends --token, else FERRY_TOKEN, else the token stored for the server in %s; "+
		"make one with `ferry token create` — `ferry demo` stores its own)", err, where)
}

package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// The current-server file tells the CLI which ferry server to talk to when
// neither --server nor FERRY_SERVER says, like kubectl's current-context:
// `ferry demo` writes it once its server listens, so that `ferry status`
// in another terminal needs no flag. It is
// $XDG_CONFIG_HOME/ferry/current-server (~/.config/ferry/… without
// XDG_CONFIG_HOME), mode 0600 in a 0700 directory, next to the credentials
// file that holds the server's token:
//
//	{
//	  "server": "http://127.0.0.1:7070",
//	  "credentials": "/home/ada/.config/ferry/credentials.json",
//	  "writtenBy": "ferry demo",
//	  "writtenAt": "2026-12-02T14:00:00Z"
//	}
//
// The server is --server, else FERRY_SERVER, else this file's server, else
// http://127.0.0.1:7070; the token is --token, else FERRY_TOKEN, else the
// server's entry in the credentials file (the one this file names when the
// server came from it).
type currentServer struct {
	Server string `json:"server"`
	// Credentials is the credentials file holding Server's token.
	Credentials string    `json:"credentials,omitempty"`
	WrittenBy   string    `json:"writtenBy,omitempty"`
	WrittenAt   time.Time `json:"writtenAt,omitzero"`
}

// currentServerPath is where the current-server file is: beside the
// credentials file.
func currentServerPath() (string, error) {
	creds, err := credentialsPath()
	if err != nil {
		return "", fmt.Errorf("current-server file: %w", err)
	}
	return filepath.Join(filepath.Dir(creds), "current-server"), nil
}

// readCurrentServer reads the file at path; a missing file is nil, no
// error.
func readCurrentServer(path string) (*currentServer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("current-server file: %w", err)
	}
	var cur currentServer
	if err := json.Unmarshal(data, &cur); err != nil || cur.Server == "" {
		if err == nil {
			err = errors.New("no server")
		}
		return nil, usageErrorf("current-server file %s: %v (fix it, remove it, or pass --server)", path, err)
	}
	return &cur, nil
}

// writeCurrentServer makes cur the current server, atomically, readable by
// its owner only.
func writeCurrentServer(path string, cur currentServer) error {
	data, err := json.MarshalIndent(cur, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("current-server file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".current-server-*") // mode 0600
	if err != nil {
		return fmt.Errorf("current-server file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("current-server file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("current-server file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("current-server file: %w", err)
	}
	return nil
}

// serverSource is where the CLI found the server it talks to, for
// messages.
type serverSource struct {
	url         string
	from        string // "--server", "FERRY_SERVER", the file's path, or "the default"
	credentials string // the credentials file to read the token from ("": the default one)
}

// findServer applies the precedence: flag, else FERRY_SERVER, else the
// current-server file, else defaultServer.
func findServer(flag string) (serverSource, error) {
	if flag != "" {
		return serverSource{url: flag, from: "--server"}, nil
	}
	if env := os.Getenv("FERRY_SERVER"); env != "" {
		return serverSource{url: env, from: "FERRY_SERVER"}, nil
	}
	path, err := currentServerPath()
	if err == nil {
		cur, err := readCurrentServer(path)
		if err != nil {
			return serverSource{}, err
		}
		if cur != nil {
			return serverSource{url: cur.Server, from: path, credentials: cur.Credentials}, nil
		}
	}
	return serverSource{url: defaultServer, from: "the default"}, nil
}

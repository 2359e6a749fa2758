package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/api"
)

// fakeStatusServer answers GET /api/v1/status with one environment named
// name, and only to the bearer token want.
func fakeStatusServer(t *testing.T, name, want string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+want {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(api.ErrorBody{Error: "wrong token " + r.Header.Get("Authorization"), Code: "unauthorized"})
			return
		}
		json.NewEncoder(w).Encode(api.StatusBody{Environments: []api.EnvStatus{{Name: name, State: "empty"}}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestCurrentServer: without --server or FERRY_SERVER a command talks to
// the current-server file's server, with the token stored for it in the
// credentials file that file names; FERRY_SERVER and then --server win.
func TestCurrentServer(t *testing.T) {
	fromFile := fakeStatusServer(t, "from-file", "ferry_file")
	fromEnv := fakeStatusServer(t, "from-env", "ferry_env")
	fromFlag := fakeStatusServer(t, "from-flag", "ferry_flag")
	tests := []struct {
		name     string
		file     string // the current-server file's content; "" for none
		env      string // FERRY_SERVER
		args     []string
		wantCode int
		want     string // in stdout (code 0) or stderr
	}{
		{"the file's server and token", `{"server": "` + fromFile + `", "credentials": "CREDS"}`, "", nil, 0, `"name": "from-file"`},
		{"FERRY_SERVER wins over the file", `{"server": "` + fromFile + `", "credentials": "CREDS"}`, fromEnv, nil, 0, `"name": "from-env"`},
		{"--server wins over both", `{"server": "` + fromFile + `", "credentials": "CREDS"}`, fromEnv, []string{"--server", fromFlag}, 0, `"name": "from-flag"`},
		{"a broken file is named", `{"server": `, "", nil, 2, "current-server file CONFIG/ferry/current-server: unexpected end of JSON input (fix it, remove it, or pass --server)"},
		{"a file without a server", `{}`, "", nil, 2, "current-server file CONFIG/ferry/current-server: no server"},
		{"an unreachable current server says where it came from", `{"server": "http://127.0.0.1:1", "credentials": "CREDS"}`, "", nil, 1,
			"cannot reach the ferry server at http://127.0.0.1:1 (the current server, from CONFIG/ferry/current-server: start it again (ferry demo), pass --server, or remove that file)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgDir := t.TempDir()
			t.Setenv("XDG_CONFIG_HOME", cfgDir)
			t.Setenv("FERRY_SERVER", tt.env)
			creds := filepath.Join(t.TempDir(), "elsewhere.json") // not the default credentials file
			for server, tok := range map[string]string{fromFile: "ferry_file", fromEnv: "ferry_env", fromFlag: "ferry_flag"} {
				if err := saveCredential(creds, server, "t", tok); err != nil {
					t.Fatal(err)
				}
			}
			if err := saveCredential(filepath.Join(cfgDir, "ferry", "credentials.json"), fromEnv, "t", "ferry_env"); err != nil {
				t.Fatal(err)
			}
			if err := saveCredential(filepath.Join(cfgDir, "ferry", "credentials.json"), fromFlag, "t", "ferry_flag"); err != nil {
				t.Fatal(err)
			}
			if tt.file != "" {
				if err := os.WriteFile(filepath.Join(cfgDir, "ferry", "current-server"), []byte(strings.ReplaceAll(tt.file, "CREDS", creds)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			stdout, stderr, code := run(t, append([]string{"status", "-o", "json"}, tt.args...)...)
			got := stdout
			if code != 0 {
				got = stderr
			}
			want := strings.ReplaceAll(tt.want, "CONFIG", cfgDir)
			if code != tt.wantCode || !strings.Contains(got, want) {
				t.Errorf("ferry status %v: exit %d\nstdout: %s\nstderr: %s\nwant exit %d with %q", tt.args, code, stdout, stderr, tt.wantCode, want)
			}
		})
	}
}

func TestNoCurrentServer(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("FERRY_SERVER", "")
	if src, err := findServer(""); err != nil || src.url != defaultServer || src.credentials != "" {
		t.Errorf("findServer without flag, variable or file = %+v, %v; want %s", src, err, defaultServer)
	}
}

// TestWriteCurrentServer: the file is the owner's alone, replaced whole,
// and read back as written.
func TestWriteCurrentServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry", "current-server")
	for _, server := range []string{"http://127.0.0.1:7070", "http://127.0.0.1:7171"} {
		if err := writeCurrentServer(path, currentServer{Server: server, Credentials: "/c.json", WrittenBy: "ferry demo"}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("current-server file mode = %v, want 0600", fi.Mode().Perm())
		}
		cur, err := readCurrentServer(path)
		if err != nil || cur.Server != server || cur.Credentials != "/c.json" {
			t.Errorf("readCurrentServer = %+v, %v; want %s with its credentials file", cur, err, server)
		}
	}
	if dir, err := os.Stat(filepath.Dir(path)); err != nil || dir.Mode().Perm() != 0o700 {
		t.Errorf("current-server directory = %v, %v; want mode 0700", dir.Mode().Perm(), err)
	}
}

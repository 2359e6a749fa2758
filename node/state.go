package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferryhq/ferry"
)

// envState is what the node keeps of one environment on disk, in
// DataDir/node/envs/<env>.json (mode 0600: the spec's variables hold
// resolved secrets): its runtime configuration and the spec last applied
// to it with success, so that a node started after a crash brings the
// environment back by itself. The ledger is ferry's; the node never
// touches it.
type envState struct {
	Config EnvConfig   `json:"config"`
	Spec   *ferry.Spec `json:"spec,omitempty"`
}

// stateDir is where the environments' states are.
func stateDir(dataDir string) string { return filepath.Join(nodeDir(dataDir), "envs") }

// saveState writes st atomically: a temporary file, fsynced, renamed into
// place, and the directory fsynced, so a crash leaves the old state or
// the new one, never half of either.
func saveState(dataDir string, st envState) error {
	dir := stateDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save state of %s: %w", st.Config.Env, err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save state of %s: %w", st.Config.Env, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+st.Config.Env+"-")
	if err != nil {
		return fmt.Errorf("save state of %s: %w", st.Config.Env, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, st.Config.Env+".json"))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("save state of %s: %w", st.Config.Env, err)
	}
	return nil
}

// removeState forgets an environment for good.
func removeState(dataDir, env string) error {
	err := os.Remove(filepath.Join(stateDir(dataDir), env+".json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove state of %s: %w", env, err)
	}
	return syncDir(stateDir(dataDir))
}

// loadStates reads every environment's state. A file that does not parse
// is an error naming it: the node refuses to start rather than drop an
// environment silently.
func loadStates(dataDir string) ([]envState, error) {
	dir := stateDir(dataDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	var out []envState
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			os.Remove(filepath.Join(dir, name)) // a crashed save's
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read state: %w", err)
		}
		var st envState
		if err := decode(strings.NewReader(string(b)), &st); err != nil {
			return nil, fmt.Errorf("state %s: %w", filepath.Join(dir, name), err)
		}
		if st.Config.Env+".json" != name {
			return nil, fmt.Errorf("state %s: it is environment %q's", filepath.Join(dir, name), st.Config.Env)
		}
		out = append(out, st)
	}
	return out, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/leader"
	"github.com/ferryhq/ferry/ledger"
)

// dataDirLock is the file in the data directory that a running server
// holds locked (flock): while it is held, that server's process lives.
const dataDirLock = "serve.lock"

// lockDataDir takes the data directory's lock, or says which process has
// it. The kernel lets go of it when the process dies, however it dies.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, dataDirLock)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// A process forked by the previous run (or by anything else in this
	// process) holds its copy of the lock until it execs: a moment.
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	for deadline := time.Now().Add(lockWait); errors.Is(err, unix.EWOULDBLOCK) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		pid, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ferry.Errorf(ferry.ECONFLICT, "another ferry server (pid %s) uses the data directory %s: stop it first", strings.TrimSpace(string(pid)), dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
	}
	return f, nil
}

// lockWait is how long a server waits for the data directory's lock
// before it says another server has it.
const lockWait = 2 * time.Second

// unlockDataDir lets go of the lock at once, whatever process still
// shares the file (a child between fork and exec), then closes it.
func unlockDataDir(f *os.File) error {
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return f.Close()
}

// identity names this server across its runs: the machine and the data
// directory. A lease whose holder has this identity belongs to an earlier
// run of this server, dead since this run holds the data directory lock.
func identity(dataDir string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	id := host + ":" + abs
	if len(id) > ledger.MaxName-16 {
		id = id[len(id)-(ledger.MaxName-16):]
	}
	return id
}

// holder is this run's lease holder: the identity and a random suffix.
func holder(id string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return id + "#" + hex.EncodeToString(b)
}

// resign gives up the lead at once through l.
func (s *Server) resign(l ledger.LeaseStore) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lease := s.leadership.Lease()
	return l.Resign(ctx, s.cfg.App, lease.Holder, lease.Term, s.opts.Now())
}

// campaign asks once for the lead of the app's ledger, for this run's
// holder. While another server leads, it returns the ECONFLICT error that
// names it. The holder's previous run, dead since this run holds the data
// directory's lock, is taken over at once.
func (s *Server) campaign(ctx context.Context) (*leader.Lead, error) {
	id := identity(s.cfg.DataDir)
	if s.holder == "" {
		s.holder = holder(id)
	}
	return leader.Acquire(ctx, s.raw, leader.Config{
		App: s.cfg.App, Holder: s.holder, Address: s.advertise, TTL: s.opts.LeaseTTL, Now: s.opts.Now,
		Dead:   func(l *ledger.Lease) bool { return strings.HasPrefix(l.Holder, id+"#") },
		Logger: s.log.With("part", "leader"),
	})
}

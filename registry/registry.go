// Package registry runs ferry's embedded OCI registry: the production
// registry of github.com/distribution/distribution/v3 served in-process, with
// its blobs, manifests and tags in a filesystem directory that survives
// restarts.
//
// The registry speaks plain HTTP and, by default, only on a loopback
// address: it is where ferry pushes the images it builds and where local
// runtimes pull them from. Every request needs the credentials the Server
// makes when it is created (Credentials): HTTP basic authentication through
// distribution's htpasswd access controller, with a random password that
// lives only in ferry's memory (the file keeps its bcrypt hash). Replicas
// and other local users can neither push, tag, delete nor read; only the
// process holding the Server can hand the credentials on.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // access controller "htpasswd"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // storage driver "filesystem"
)

// DefaultAddr is the listen address used when Config.Addr is empty.
const DefaultAddr = "127.0.0.1:5050"

// htpasswdFile holds the bcrypt hash of the credentials of the running
// Server, rewritten at every New.
const htpasswdFile = "htpasswd"

// User is the name the registry's credentials carry.
const User = "ferry"

// secretFile holds the HMAC secret that signs upload state, kept in the data
// directory so that an upload started before a restart can still finish.
const secretFile = "http.secret"

// Config configures a Server.
type Config struct {
	// Dir is the storage root. It is created if missing and must persist
	// across restarts.
	Dir string
	// Addr is the TCP listen address; DefaultAddr when empty. Port 0 picks
	// a free port (see Server.Addr).
	Addr string
	// AllowRemote permits a listen address that is not loopback. The
	// registry speaks plain HTTP, so its credentials cross the network in
	// the clear: only set it on a trusted network.
	AllowRemote bool
	// Logger receives the registry's warnings and errors; nil discards them.
	Logger *slog.Logger
}

// Server is an embedded registry. Create it with New, then Start it; Close
// stops it. A process may run several servers on different directories.
type Server struct {
	dir      string
	addr     string
	password string
	log      *slog.Logger
	app      *handlers.App
	srv      *http.Server

	mu     sync.Mutex
	ln     net.Listener
	done   chan struct{} // closed when Serve returns
	closed bool

	connMu sync.Mutex
	fresh  map[net.Conn]struct{} // connections that have not sent a byte
}

// New prepares a registry storing under cfg.Dir. It does not listen yet.
func New(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("registry: no storage directory")
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if err := checkAddr(addr, cfg.AllowRemote); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("registry: create storage: %w", err)
	}
	secret, err := loadSecret(dir)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "registry")

	password, err := writeCredentials(dir)
	if err != nil {
		return nil, err
	}
	app, err := newApp(dir, secret)
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, addr: addr, password: password, log: logger, app: app, fresh: map[net.Conn]struct{}{}}
	s.srv = &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ConnState:         s.track,
	}
	s.srv.RegisterOnShutdown(s.closeFresh) // runs once the listener is closed
	return s, nil
}

// track remembers connections on which no request has begun. Clients dial
// ahead (go-containerregistry races https against http, and Go's transport
// pools a connection dialed for a request that was canceled); http.Server's
// Shutdown would wait five seconds for each such connection to speak.
func (s *Server) track(c net.Conn, state http.ConnState) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if state == http.StateNew {
		s.fresh[c] = struct{}{}
	} else {
		delete(s.fresh, c)
	}
}

// closeFresh closes the connections that have not sent a request.
func (s *Server) closeFresh() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for c := range s.fresh {
		c.Close()
		delete(s.fresh, c)
	}
}

// newApp builds distribution's HTTP application. handlers.NewApp reports
// bad configuration by panicking; that becomes an error here.
func newApp(dir, secret string) (app *handlers.App, err error) {
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": dir},
			"delete":     configuration.Parameters{"enabled": true},
			"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
		},
	}
	cfg.HTTP.Secret = secret
	cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{
		"realm": "ferry", "path": filepath.Join(dir, htpasswdFile),
	}}
	quietLogrus()
	defer func() {
		if r := recover(); r != nil {
			app, err = nil, fmt.Errorf("registry: configure: %v", r)
		}
	}()
	return handlers.NewApp(context.Background(), cfg), nil
}

// checkAddr refuses a listen address that is not loopback unless allowed.
func checkAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("registry: listen address %q: %w", addr, err)
	}
	if allowRemote || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("registry: listen address %q is not loopback (the registry speaks plain HTTP, so its credentials would cross the network in the clear; allow remote access explicitly to use it)", addr)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Credentials returns the user and password every request to the registry
// needs. The password is made anew by New; only its hash is on disk.
func (s *Server) Credentials() (user, password string) { return User, s.password }

// writeCredentials makes a random password and writes its htpasswd line
// (mode 0600) for distribution's access controller. The password has 256
// random bits, so bcrypt's work factor adds nothing and the cheapest cost
// keeps each request's check near a millisecond.
func writeCredentials(dir string) (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("registry: generate credentials: %w", err)
	}
	password := hex.EncodeToString(raw[:])
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return "", fmt.Errorf("registry: hash credentials: %w", err)
	}
	if err := writeFile(dir, htpasswdFile, User+":"+string(hash)+"\n"); err != nil {
		return "", fmt.Errorf("registry: write credentials: %w", err)
	}
	return password, nil
}

// writeFile replaces dir/name with content atomically, mode 0600.
func writeFile(dir, name, content string) error {
	tmp, err := os.CreateTemp(dir, name+".*")
	if err != nil {
		return err
	}
	_, werr := tmp.WriteString(content)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// loadSecret reads the data directory's HTTP secret, creating it on first use.
func loadSecret(dir string) (string, error) {
	path := filepath.Join(dir, secretFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("registry: read secret: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("registry: generate secret: %w", err)
	}
	secret := hex.EncodeToString(raw[:])
	if err := writeFile(dir, secretFile, secret+"\n"); err != nil {
		return "", fmt.Errorf("registry: write secret: %w", err)
	}
	return secret, nil
}

// Start listens on the configured address and serves in the background. It
// returns once the listener is open; ctx bounds only the listening. The
// server runs until Close.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("registry: start: server closed")
	}
	if s.ln != nil {
		return errors.New("registry: start: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("registry: listen: %w", err)
	}
	s.ln = ln
	s.done = make(chan struct{})
	register(s.log)
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("registry stopped", "err", err)
		}
	}()
	s.log.Info("registry listening", "addr", ln.Addr().String(), "dir", s.dir)
	return nil
}

// Addr returns the address the server listens on (host:port), or the
// configured address before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}

// Host returns the registry host to put in image references
// ("127.0.0.1:5050/app:tag"). A wildcard listen address is reported as
// 127.0.0.1, the address ferry itself reaches it on.
func (s *Server) Host() string {
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil {
		return s.Addr()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Close stops accepting requests, waits up to 10 seconds for those in
// flight, and releases the storage. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.ln != nil
	s.mu.Unlock()

	var err error
	if started {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if serr := s.srv.Shutdown(ctx); serr != nil {
			err = fmt.Errorf("registry: shutdown: %w", serr)
			s.srv.Close()
		}
		<-s.done
		unregister(s.log)
	}
	return errors.Join(err, s.app.Shutdown())
}

package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/runtime/local"
)

// ClientConfig configures a client of the node of DataDir.
type ClientConfig struct {
	// DataDir is ferry's data directory, the node's too.
	DataDir string
	// Images pulls the images Apply unpacks for the node (ferry's
	// registry, with ferry's credentials).
	Images local.ImageSource
	Logger *slog.Logger
}

// Client speaks the node's protocol over its unix socket.
type Client struct {
	cfg ClientConfig
	hc  *http.Client
	tr  *http.Transport
}

// NewClient returns a client of the node of cfg.DataDir; it connects on
// each call, so it works across restarts of the node.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sock := SocketPath(cfg.DataDir)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 8,
	}
	return &Client{cfg: cfg, tr: tr, hc: &http.Client{Transport: tr}}
}

// Close closes the client's idle connections; the node runs on.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// do sends a JSON request and decodes a JSON answer into out (when not
// nil); an error answer becomes the node's error.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	res, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if out == nil || res.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("node: %s %s: answer: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a 2xx answer, or the node's error.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("node: %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://node"+path, body)
	if err != nil {
		return nil, fmt.Errorf("node: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, ferry.Wrap(err, ferry.EUNAVAILABLE, "the node is unreachable")
	}
	if res.StatusCode/100 != 2 {
		defer res.Body.Close()
		var we WireError
		if err := json.NewDecoder(res.Body).Decode(&we); err != nil {
			return nil, fmt.Errorf("node: %s %s: %s", method, path, res.Status)
		}
		return nil, we.Err()
	}
	return res, nil
}

// events reads an NDJSON stream, calling each with every event but the
// last, which it returns as an error (nil for Done).
func events(res *http.Response, what string, each func(Event) error) error {
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("node: %s: %w", what, err)
		}
		switch {
		case e.Error != nil:
			return e.Error.Err()
		case e.Done:
			return nil
		}
		if err := each(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return ferry.Wrap(err, ferry.EUNAVAILABLE, "node: %s: stream cut", what)
	}
	return errCut(what)
}

// Health asks the node how it is.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/v1/health", nil, &h)
	return h, err
}

// Watch returns when the node goes away (it stopped or died, or ctx
// ended): ferry starts one again then.
func (c *Client) Watch(ctx context.Context) error {
	res, err := c.send(ctx, http.MethodGet, "/v1/watch", nil)
	if err != nil {
		return err
	}
	return events(res, "watch", func(Event) error { return nil })
}

// Open opens the environment on the node (or adopts it, when it runs
// with this configuration already) and returns its runtime.
func (c *Client) Open(ctx context.Context, cfg EnvConfig) (*Runtime, error) {
	var info EnvInfo
	if err := c.do(ctx, http.MethodPut, "/v1/envs/"+url.PathEscape(cfg.Env), cfg, &info); err != nil {
		return nil, fmt.Errorf("open %s on the node: %w", cfg.Env, err)
	}
	return &Runtime{c: c, env: cfg.Env, info: info}, nil
}

// Release stops an environment on the node for good: its replicas and
// balancer, and the state that would bring them back.
func (c *Client) Release(ctx context.Context, env string) error {
	if err := c.do(ctx, http.MethodDelete, "/v1/envs/"+url.PathEscape(env), nil, nil); err != nil {
		return fmt.Errorf("release %s on the node: %w", env, err)
	}
	return nil
}

// Runtime is one environment on the node, a ferry.Runtime with the
// contract's guarantees (the node's runtime/local.Runtime keeps them).
// Close releases only the client: the node keeps serving.
type Runtime struct {
	c    *Client
	env  string
	info EnvInfo
}

var _ ferry.Runtime = (*Runtime)(nil)

func (r *Runtime) path(call string) string { return "/v1/envs/" + url.PathEscape(r.env) + "/" + call }

// Addr is the environment's balancer address.
func (r *Runtime) Addr() string { return r.info.Addr }

// Sandboxed reports whether the node contains the replicas under runc.
func (r *Runtime) Sandboxed() bool { return r.info.Sandboxed }

// Apply unpacks the image into the shared data directory (the node pulls
// nothing), then asks the node to roll out, passing its progress on.
func (r *Runtime) Apply(ctx context.Context, spec ferry.Spec, progress func(ferry.Progress)) error {
	if spec.Replicas > 0 {
		if err := local.Unpack(ctx, r.c.cfg.DataDir, r.c.cfg.Images, spec.Digest, r.c.cfg.Logger); err != nil {
			return fmt.Errorf("apply to %s: %w", r.env, err)
		}
	}
	res, err := r.c.send(ctx, http.MethodPost, r.path("apply"), spec)
	if err != nil {
		return fmt.Errorf("apply to %s: %w", r.env, err)
	}
	return events(res, "apply to "+r.env, func(e Event) error {
		if e.Progress != nil && progress != nil {
			progress(*e.Progress)
		}
		return nil
	})
}

// Scale sets the number of replicas.
func (r *Runtime) Scale(ctx context.Context, replicas int) error {
	return r.c.do(ctx, http.MethodPost, r.path("scale"), ScaleRequest{Replicas: replicas}, nil)
}

// Status reports what runs on the node.
func (r *Runtime) Status(ctx context.Context) (ferry.Status, error) {
	var st ferry.Status
	err := r.c.do(ctx, http.MethodGet, r.path("status"), nil, &st)
	return st, err
}

// Logs writes the replicas' output, following it with follow until ctx
// ends.
func (r *Runtime) Logs(ctx context.Context, w io.Writer, tail int, follow bool) error {
	q := url.Values{"tail": {strconv.Itoa(tail)}}
	if follow {
		q.Set("follow", "1")
	}
	res, err := r.c.send(ctx, http.MethodGet, r.path("logs")+"?"+q.Encode(), nil)
	if err != nil {
		if follow && ctx.Err() != nil {
			return nil // stopped by the caller, as a follow ends
		}
		return err
	}
	err = events(res, "logs of "+r.env, func(e Event) error {
		_, err := io.WriteString(w, e.Text)
		return err
	})
	if follow && ctx.Err() != nil {
		return nil
	}
	return err
}

// Split runs a canary beside the stable replicas (the local runtime's
// Split, on the node), passing its progress on. The canary's image is
// unpacked here first, as Apply does.
func (r *Runtime) Split(ctx context.Context, s ferry.Split, progress func(ferry.Progress)) error {
	for _, spec := range []ferry.Spec{s.Canary, s.Stable} {
		if err := local.Unpack(ctx, r.c.cfg.DataDir, r.c.cfg.Images, spec.Digest, r.c.cfg.Logger); err != nil {
			return fmt.Errorf("split %s: %w", r.env, err)
		}
	}
	res, err := r.c.send(ctx, http.MethodPost, r.path("split"), s)
	if err != nil {
		return fmt.Errorf("split %s: %w", r.env, err)
	}
	return events(res, "split "+r.env, func(e Event) error {
		if e.Progress != nil && progress != nil {
			progress(*e.Progress)
		}
		return nil
	})
}

// EndSplit routes everything to the stable replicas again and stops the
// canary and baseline ones.
func (r *Runtime) EndSplit(ctx context.Context) error {
	if err := r.c.do(ctx, http.MethodDelete, r.path("split"), nil, nil); err != nil {
		return fmt.Errorf("end split %s: %w", r.env, err)
	}
	return nil
}

// Figures returns each track's figures of the split that runs on the
// node; an empty map when none runs (as after the node restarted).
func (r *Runtime) Figures(ctx context.Context) (map[string]analysis.Figures, error) {
	f := map[string]analysis.Figures{}
	if err := r.c.do(ctx, http.MethodGet, r.path("figures"), nil, &f); err != nil {
		return nil, fmt.Errorf("figures of %s: %w", r.env, err)
	}
	return f, nil
}

// Close releases the client's side only: the environment keeps running
// on the node, for the next ferry to adopt.
func (r *Runtime) Close(context.Context) error { return nil }

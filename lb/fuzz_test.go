package lb_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/lb"
)

// FuzzForward writes generated raw request streams to a balancer in front of
// the recording backend, and checks that whatever the balancer makes of them
//   - the backend gets no more requests than the balancer answered with the
//     backend's answers;
//   - each request the backend got is, in order, one of the requests a strict
//     reading of the stream (net/http's ReadRequest, the parser the balancer
//     serves with) finds: same method, target and body, so nothing was glued
//     to or cut from another request;
//   - every such request had one unambiguous framing;
//   - the balancer logged no panic.
//
// The seed corpus is TestSmuggling's table, so a plain go test runs it.
func FuzzForward(f *testing.F) {
	for _, tc := range smuggleCases {
		f.Add([]byte(tc.raw))
	}
	logs := &panicLog{}
	b, rec := startSmuggleRig(f, lb.Config{Logger: slog.New(logs), HeaderTimeout: 2 * time.Second})
	f.Fuzz(func(t *testing.T, raw []byte) {
		ref := referenceParse(raw)
		methods := make([]string, len(ref))
		for i, r := range ref {
			methods[i] = r.method
		}
		ex := sendRaw(b.Addr(), raw, len(ref), 20*time.Millisecond, methods)
		got := complete(settleFor(b, rec, time.Millisecond))
		checkOneFraming(t, got)
		if seqs := ex.seenSeqs(); len(got) > len(seqs) {
			t.Errorf("backend saw %d requests, the balancer answered %d of them (%s)", len(got), len(seqs), ex)
		}
		if len(got) > len(ref) {
			t.Errorf("backend saw %d requests, the stream holds %d", len(got), len(ref))
		}
		for i, s := range got {
			if i >= len(ref) {
				break
			}
			w := ref[i]
			if s.Method != w.method || s.URI != w.uri || !bytes.Equal(s.Body, w.body) {
				t.Errorf("backend's request %d = %s %s with %d body bytes, the stream's = %s %s with %d",
					i, s.Method, s.URI, len(s.Body), w.method, w.uri, len(w.body))
			}
		}
		if msg := logs.take(); msg != "" {
			t.Errorf("balancer logged a panic: %s", msg)
		}
	})
}

type refRequest struct {
	method, uri string
	body        []byte
}

// referenceParse reads raw as one connection's requests with net/http's
// parser, up to the first that is malformed or incomplete, or the last the
// connection carries (Connection: close, or HTTP/1.0, after which the
// balancer closes).
func referenceParse(raw []byte) []refRequest {
	var out []refRequest
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return out
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return out
		}
		out = append(out, refRequest{method: req.Method, uri: req.URL.RequestURI(), body: body})
		if req.Close || !req.ProtoAtLeast(1, 1) {
			return out
		}
	}
}

// panicLog is a slog handler that keeps messages mentioning a panic.
type panicLog struct {
	mu  sync.Mutex
	msg string
}

func (p *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicLog) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *panicLog) WithGroup(string) slog.Handler            { return p }
func (p *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		p.mu.Lock()
		p.msg += r.Message + "\n"
		p.mu.Unlock()
	}
	return nil
}

func (p *panicLog) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.msg
	p.msg = ""
	return m
}

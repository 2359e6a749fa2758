// Package verify runs ferry's HTTP checks (ferry.Check) against a base
// URL: the controller's verification after a rollout and the builder's
// integration step against a trial run of a new image. One check is one
// request with optional headers and body; the answer must have the
// expected status, and may have to contain a substring or a JSON field
// with a given value. A check that fails is tried again every Interval
// until its timeout, so an app still warming up gets the time the check
// allows it.
package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
)

// Interval is the pause between two tries of a failing check.
const Interval = 200 * time.Millisecond

// maxBody bounds how much of an answer is read.
const maxBody = 1 << 20

// Run runs checks in order against base; the first that does not pass
// within its timeout (ferry.DefaultCheckTimeout when unset) ends the run
// with an error naming it and why.
func Run(ctx context.Context, client *http.Client, base string, checks []ferry.Check) error {
	for _, chk := range checks {
		timeout := chk.Timeout
		if timeout <= 0 {
			timeout = ferry.DefaultCheckTimeout
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := retry(cctx, client, base, chk)
		cancel()
		if err != nil {
			return fmt.Errorf("%s %s: %w", chk.Method, chk.Path, err)
		}
	}
	return nil
}

func retry(ctx context.Context, client *http.Client, base string, chk ferry.Check) error {
	for {
		last := once(ctx, client, base, chk)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(Interval):
		}
	}
}

// once sends chk's request once and judges the answer.
func once(ctx context.Context, client *http.Client, base string, chk ferry.Check) error {
	var body io.Reader
	if chk.Body != "" {
		body = strings.NewReader(chk.Body)
	}
	req, err := http.NewRequestWithContext(ctx, chk.Method, strings.TrimRight(base, "/")+chk.Path, body)
	if err != nil {
		return err
	}
	for _, h := range chk.Headers {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	expect := chk.Expect
	if expect == 0 {
		expect = http.StatusOK
	}
	if resp.StatusCode != expect {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, expect)
	}
	if chk.Contains != "" && !bytes.Contains(got, []byte(chk.Contains)) {
		return fmt.Errorf("body does not contain %q", chk.Contains)
	}
	if chk.JSON != nil {
		return checkJSON(got, *chk.JSON)
	}
	return nil
}

// checkJSON judges one field of a JSON body.
func checkJSON(body []byte, jc ferry.JSONCheck) error {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("body is not JSON: %v", err)
	}
	v, ok := field(doc, jc.Field)
	if !ok {
		return fmt.Errorf("JSON field %s is missing", jc.Field)
	}
	s := render(v)
	if jc.Equals != "" && s != jc.Equals {
		return fmt.Errorf("JSON field %s = %q, want %q", jc.Field, s, jc.Equals)
	}
	if jc.Contains != "" && !strings.Contains(s, jc.Contains) {
		return fmt.Errorf("JSON field %s = %q, want it to contain %q", jc.Field, s, jc.Contains)
	}
	return nil
}

// field follows a dotted path through objects and arrays (a number picks
// an array element).
func field(v any, path string) (any, bool) {
	for _, key := range strings.Split(path, ".") {
		switch n := v.(type) {
		case map[string]any:
			next, ok := n[key]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(n) {
				return nil, false
			}
			v = n[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// render is a JSON value as a check compares it: a string without its
// quotes, anything else as JSON writes it.
func render(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ferryhq/ferry"
)

// decoder walks a yaml.Node tree, collecting every problem with its place.
type decoder struct {
	file     string // name as given, for messages
	dir      string // absolute directory relative paths resolve against
	problems []Problem
	warnings []Problem
	nodes    map[string]*yaml.Node // value node of each decoded field path
}

func (d *decoder) problem(n *yaml.Node, field, msg string) Problem {
	p := Problem{File: d.file, Field: field, Message: msg}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	return p
}

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	d.problems = append(d.problems, d.problem(n, field, fmt.Sprintf(format, args...)))
}

func (d *decoder) warnf(n *yaml.Node, field, format string, args ...any) {
	d.warnings = append(d.warnings, d.problem(n, field, fmt.Sprintf(format, args...)))
}

// at returns the node recorded for a field path, for checks that span
// several fields.
func (d *decoder) at(path string) *yaml.Node { return d.nodes[path] }

// abs resolves a path from the file against the file's directory.
func (d *decoder) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(d.dir, p)
}

var yamlLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })

// syntax turns a yaml.v3 parse error into a problem with its line.
//
// yaml.v3 reports the line where the enclosing block started (line 6 for a
// mis-indented key on line 9 of a mapping that begins on line 6). The line
// of the problem itself is found as the shortest prefix of the file that
// fails with the same message.
func (d *decoder) syntax(data []byte, err error) {
	msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 0
	if m := yamlLine().FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) <= 5000 {
		var prefix strings.Builder
		for k := range lines {
			prefix.WriteString(lines[k])
			if k+1 < line {
				continue // the problem is not before the line yaml.v3 names
			}
			var n yaml.Node
			perr := yaml.Unmarshal([]byte(prefix.String()), &n)
			if perr == nil {
				continue
			}
			pmsg := strings.TrimPrefix(perr.Error(), "yaml: ")
			if pm := yamlLine().FindStringSubmatch(perr.Error()); pm != nil {
				pmsg = pm[2]
			}
			if pmsg == msg {
				line = k + 1
				break
			}
		}
	}
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Message: "syntax error: " + msg})
}

func (d *decoder) sorted(ps []Problem) []Problem {
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0 // placeless problems last
		}
		return li < lj
	})
	return ps
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// pair is one key and value of a mapping.
type pair struct {
	key, val *yaml.Node
	name     string
	path     string
}

// pairs returns the entries of a mapping in file order, reporting
// duplicates, merge keys and non-mappings. A null node is an empty mapping.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", describe(n))
		return nil
	}
	var out []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "want a plain key, got %s", describe(k))
			continue
		}
		name := k.Value
		p := join(path, name)
		if name == "<<" {
			d.errorf(k, path, "merge keys (<<) are not supported; write the fields out")
			continue
		}
		if first, dup := seen[name]; dup {
			d.errorf(k, p, "duplicate field (first at line %d)", first.Line)
			continue
		}
		seen[name] = k
		d.nodes[p] = deref(v)
		out = append(out, pair{key: k, val: deref(v), name: name, path: p})
	}
	return out
}

// object is a mapping with a fixed set of fields.
type object struct {
	d    *decoder
	path string
	at   *yaml.Node // blamed for missing fields: the mapping's key
	vals map[string]pair
	// bad is set when the node is not a mapping; that is reported once, and
	// its missing fields are not reported again.
	bad bool
}

// object reads n as a mapping whose only fields are known; unknown fields
// are reported with a suggestion. at is the node that stands for the
// mapping (its key) when a required field is missing.
func (d *decoder) object(at, n *yaml.Node, path string, known ...string) *object {
	o := &object{d: d, path: path, at: at, vals: map[string]pair{}}
	o.bad = !isNull(n) && deref(n).Kind != yaml.MappingNode
	for _, p := range d.pairs(n, path) {
		if !contains(known, p.name) {
			d.errorf(p.key, p.path, "unknown field%s", ferry.DidYouMean(p.name, known))
			continue
		}
		o.vals[p.name] = p
	}
	return o
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (o *object) field(name string) string { return join(o.path, name) }

// has reports whether the field is present with a non-null value.
func (o *object) has(name string) bool {
	p, ok := o.vals[name]
	return ok && !isNull(p.val)
}

// node returns the field's value node, or nil when absent or null.
func (o *object) node(name string) *yaml.Node {
	if !o.has(name) {
		return nil
	}
	return o.vals[name].val
}

// key returns the field's key node (for messages about the field itself),
// falling back to the object's own node.
func (o *object) key(name string) *yaml.Node {
	if p, ok := o.vals[name]; ok {
		return p.key
	}
	return o.at
}

func (o *object) missing(name string) {
	if o.bad {
		return
	}
	o.d.errorf(o.at, o.field(name), "required")
}

func (o *object) str(name string) string {
	n := o.node(name)
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		o.d.errorf(n, o.field(name), "want a string, got %s", describe(n))
		return ""
	}
	return n.Value
}

func (o *object) integer(name string, def int) int {
	n := o.node(name)
	if n == nil {
		return def
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		if i, err := strconv.Atoi(n.Value); err == nil {
			return i
		}
	}
	o.d.errorf(n, o.field(name), "want an integer, got %s", describe(n))
	return def
}

func (o *object) boolean(name string) bool {
	n := o.node(name)
	if n == nil {
		return false
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b
		}
	}
	o.d.errorf(n, o.field(name), "want true or false, got %s", describe(n))
	return false
}

// duration reads a Go duration (30s, 10m, 1h30m) that is ≥ 0, or > 0 when
// positive is set.
func (o *object) duration(name string, def time.Duration, positive bool) time.Duration {
	n := o.node(name)
	if n == nil {
		return def
	}
	if n.Kind != yaml.ScalarNode {
		o.d.errorf(n, o.field(name), "want a duration like 30s or 10m, got %s", describe(n))
		return def
	}
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil:
		o.d.errorf(n, o.field(name), "invalid duration %q (want a number and a unit, like 30s or 10m)", n.Value)
		return def
	case v < 0:
		o.d.errorf(n, o.field(name), "must not be negative")
		return def
	case v == 0 && positive:
		o.d.errorf(n, o.field(name), "must be positive")
		return def
	}
	return v
}

// list reads a sequence of nodes, each with its indexed path.
func (o *object) list(name string) []pair {
	n := o.node(name)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		o.d.errorf(n, o.field(name), "want a list, got %s", describe(n))
		return nil
	}
	out := make([]pair, len(n.Content))
	for i, item := range n.Content {
		p := index(o.field(name), i)
		item = deref(item)
		o.d.nodes[p] = item
		out[i] = pair{key: item, val: item, path: p}
	}
	return out
}

// strings reads a list of strings.
func (o *object) strings(name string) ([]string, []pair) {
	items := o.list(name)
	var out []string
	var kept []pair
	for _, it := range items {
		if it.val.Kind != yaml.ScalarNode || it.val.Tag == "!!null" {
			o.d.errorf(it.val, it.path, "want a string, got %s", describe(it.val))
			continue
		}
		out = append(out, it.val.Value)
		kept = append(kept, it)
	}
	return out, kept
}

package config

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"gopkg.in/yaml.v3"
)

// Redacted renders the resolved configuration, defaults included, as YAML
// for logging at start. Secrets appear only as references (env:NAME,
// file:PATH), literal secrets as <redacted>, and passwords inside URLs
// (ledger, repository, environment values) are masked.
func (c *Config) Redacted() string {
	root := mapping(
		"app", str(c.App),
		"dataDir", str(c.DataDir),
		"server", mapping(
			"listen", str(c.Server.Listen),
			"publicURL", optional(c.Server.PublicURL),
			"advertise", optional(c.Server.Advertise),
		),
		"ledger", str(redactURL(c.Ledger.URL)),
		"source", mapping(
			"repo", str(redactURL(c.Source.Repo)),
			"poll", str(formatDuration(c.Source.Poll)),
			"webhookSecret", optional(c.Source.WebhookSecret.String()),
		),
		"registry", mapping(
			"image", str(c.ImageRepository()),
			"embedded", boolean(c.RegistryEmbedded()),
			"listen", str(c.Registry.Listen),
			"insecure", boolean(c.Registry.Insecure),
		),
		"signing", mapping(
			"key", optional(c.Signing.Key),
			"password", optional(c.Signing.Password.String()),
		),
		"build", c.Build.view(),
		"environments", c.environmentsView(),
	)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		// Encoding nodes built above cannot fail; keep the log line useful anyway.
		return "config: " + err.Error()
	}
	_ = enc.Close()
	return b.String()
}

func (b Build) view() *yaml.Node {
	var g *yaml.Node
	if b.Go != nil {
		env := make([]*yaml.Node, len(b.Go.Env))
		for i, kv := range b.Go.Env {
			env[i] = str(kv)
		}
		g = mapping(
			"main", str(b.Go.Main),
			"ldflags", optional(b.Go.Ldflags),
			"env", list(env...),
		)
	}
	return mapping(
		"dir", str(b.Dir),
		"test", optional(b.Test),
		"timeout", str(formatDuration(b.Timeout)),
		"go", g,
		"command", optional(b.Command),
		"integration", b.Integration.view(),
	)
}

func (in *Integration) view() *yaml.Node {
	if in == nil {
		return nil
	}
	return mapping(
		"env", envView(in.Env),
		"checks", checksView(in.Checks),
		"command", optional(in.Command),
		"timeout", str(formatDuration(in.Timeout)),
	)
}

// envView shows variables with secrets as references and passwords in
// URLs masked.
func envView(vars []EnvVar) *yaml.Node {
	var env []any
	for _, v := range vars {
		if v.Secret != nil {
			env = append(env, v.Name, str("secret "+v.Secret.String()))
		} else {
			env = append(env, v.Name, str(redactURL(v.Value)))
		}
	}
	return mapping(env...)
}

// checksView shows each check on one line: "PUT /hello/ada (2 headers,
// body) → 204 containing "x", JSON message contains "Hello" within 10s".
func checksView(checks []ferry.Check) *yaml.Node {
	out := make([]*yaml.Node, len(checks))
	for i, ch := range checks {
		s := ch.Method + " " + ch.Path
		var sends []string
		if n := len(ch.Headers); n > 0 {
			sends = append(sends, fmt.Sprintf("%d header%s", n, plural(n)))
		}
		if ch.Body != "" {
			sends = append(sends, "body")
		}
		if len(sends) > 0 {
			s += " (" + strings.Join(sends, ", ") + ")"
		}
		s += fmt.Sprintf(" → %d", ch.Expect)
		if ch.Contains != "" {
			s += " containing " + strconv.Quote(ch.Contains)
		}
		if j := ch.JSON; j != nil {
			s += ", JSON " + j.Field
			if j.Equals != "" {
				s += " = " + strconv.Quote(j.Equals)
			}
			if j.Contains != "" {
				s += " contains " + strconv.Quote(j.Contains)
			}
		}
		out[i] = str(s + " within " + formatDuration(ch.Timeout))
	}
	return list(out...)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (c *Config) environmentsView() *yaml.Node {
	var kv []any
	for _, e := range c.Environments {
		tags := make([]*yaml.Node, len(e.Tags))
		for i, t := range e.Tags {
			tags[i] = str(t)
		}
		env := envView(e.Env)
		verify := checksView(e.Verify)
		var soak *yaml.Node
		if e.From != "" {
			soak = str(formatDuration(e.Soak))
		}
		kv = append(kv, e.Name, mapping(
			"branch", optional(e.Branch),
			"from", optional(e.From),
			"soak", soak,
			"releaseTag", optional(e.ReleaseTag),
			"tags", list(tags...),
			"role", str(string(e.Role)),
			"runtime", e.Runtime.view(e.Replicas),
			"env", env,
			"url", optional(e.URL),
			"verify", verify,
			"rollout", mapping(
				"maxSurge", integer(e.Rollout.MaxSurge),
				"maxUnavailable", integer(e.Rollout.MaxUnavailable),
				"readyTimeout", str(formatDuration(e.Rollout.ReadyTimeout)),
				"grace", str(formatDuration(e.Rollout.Grace)),
			),
			"strategy", canaryView(e.Canary),
			"approval", approvalView(e.Approval),
			"auto", autoView(e.Auto),
			"wait", waitView(e.Auto, e.Wait),
			"windows", windowsView(e.Windows),
			"freeze", freezesView(e.Freezes),
		))
	}
	return mapping(kv...)
}

func windowsView(ws []ferry.Window) *yaml.Node {
	items := make([]*yaml.Node, len(ws))
	for i, w := range ws {
		items[i] = mapping("days", str(ferry.DaysString(w.Days)), "from", str(hhmm(w.From)), "to", str(hhmm(w.To)), "timezone", str(w.Location.String()))
	}
	return list(items...)
}

func freezesView(fs []ferry.Freeze) *yaml.Node {
	items := make([]*yaml.Node, len(fs))
	for i, f := range fs {
		items[i] = mapping("from", str(f.From.Format(time.RFC3339)), "to", str(f.To.Format(time.RFC3339)), "reason", str(f.Reason))
	}
	return list(items...)
}

func hhmm(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60)
}

func autoView(auto bool) *yaml.Node {
	if !auto {
		return nil
	}
	return boolean(true)
}

func waitView(auto bool, wait time.Duration) *yaml.Node {
	if !auto {
		return nil
	}
	return str(formatDuration(wait))
}

func approvalView(a *ferry.Approval) *yaml.Node {
	if a == nil {
		return nil
	}
	return mapping(
		"required", integer(a.Required),
		"role", str(string(a.Role)),
		"selfApproval", boolean(a.SelfApproval),
		"expires", str(formatDuration(a.Expires)),
	)
}

func (r Runtime) view(replicas int) *yaml.Node {
	switch {
	case r.Local != nil:
		l := r.Local
		args := make([]*yaml.Node, len(l.Args))
		for i, a := range l.Args {
			args[i] = str(a)
		}
		var port *yaml.Node
		if l.PortEnv != "" {
			port = mapping("env", str(l.PortEnv))
		}
		return mapping("local", mapping(
			"replicas", integer(replicas),
			"listen", str(l.Listen),
			"port", port,
			"args", list(args...),
			"readiness", str(l.Readiness),
			"resources", resourcesView(l.Resources),
		))
	case r.Kubernetes != nil:
		k := r.Kubernetes
		return mapping("kubernetes", mapping(
			"namespace", str(k.Namespace),
			"deployment", str(k.Deployment),
			"container", optional(k.Container),
			"kubeconfig", optional(k.Kubeconfig),
			"context", optional(k.Context),
			"hpa", optional(k.HPA),
		))
	}
	return nil
}

// formatDuration prints 10m rather than 10m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// mapping builds a mapping node from alternating keys and *yaml.Node
// values, leaving out nil values and empty collections.
// resourcesView is what each replica may use, defaults filled in; nil
// when nothing is set.
func resourcesView(r ferry.Resources) *yaml.Node {
	if r == (ferry.Resources{}) {
		return nil
	}
	r = r.WithDefaults()
	return mapping(
		"memory", str(ferry.FormatMemory(r.Memory)),
		"cpu", str(ferry.FormatMilliCPU(r.MilliCPU)),
		"pids", integer(r.Pids),
	)
}

func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(kv); i += 2 {
		v, _ := kv[i+1].(*yaml.Node)
		if v == nil || (v.Kind != yaml.ScalarNode && len(v.Content) == 0) {
			continue
		}
		n.Content = append(n.Content, str(kv[i].(string)), v)
	}
	return n
}

func list(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Content: items}
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func optional(s string) *yaml.Node {
	if s == "" {
		return nil
	}
	return str(s)
}

func integer(i int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

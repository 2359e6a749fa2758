package ferry_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ferryhq/ferry"

// adapters are the packages named for a technology: each implements a
// part of ferry over git, OCI, a registry, a webhook provider, a database
// engine, a runtime or a metrics store. They depend on the root (and the
// ledger's port, the pure analysis package, internal packages and their
// technology's libraries), never on the parts that use them, nor on each
// other.
var adapters = []string{
	"source", "oci", "registry", "webhook", "cosign",
	"ledger/sqlite", "ledger/postgres",
	"runtime/local", "runtime/kube", "prometheus",
}

// users are the parts that put adapters to work; no adapter may depend on
// them.
var users = []string{"config", "controller", "builder", "release", "verify", "api", "auth", "dashboard", "dora", "metrics", "server", "cli", "client", "node"}

// TestImportGraph holds the layout docs/ARCHITECTURE.md draws: the root
// imports nothing of the module; configuration and the release rules only
// the root; an adapter no user and no other adapter; the controller no
// adapter; the client binary no server part. It reads `go list -deps`, so an import through another package
// counts too.
func TestImportGraph(t *testing.T) {
	deps := moduleDeps(t)
	for _, tc := range []struct {
		pkg    string
		forbid []string // packages of the module it must not depend on; "*" is all
		except []string
	}{
		{pkg: "", forbid: []string{"*"}},
		{pkg: "config", forbid: []string{"*"}, except: []string{""}},
		{pkg: "release", forbid: []string{"*"}, except: []string{""}},
		{pkg: "analysis", forbid: []string{"*"}},
		{pkg: "controller", forbid: append(slices.Clone(adapters), "config", "server", "cli", "api", "dashboard", "builder", "node")},
		// The client binary starts without initialising the server's parts
		// and their libraries (Kubernetes' client, the registry, runc, cosign).
		{pkg: "parts", forbid: []string{"*"}, except: []string{"", "config", "ledger"}},
		{pkg: "cmd/ferry", forbid: []string{"server", "node", "builder", "dashboard", "metrics", "source", "oci", "registry", "webhook", "cosign", "runtime", "prometheus"}},
	} {
		checkDeps(t, deps, tc.pkg, tc.forbid, tc.except)
	}
	for _, a := range adapters {
		forbid := append(slices.Clone(users), adapters...)
		checkDeps(t, deps, a, forbid, []string{a})
	}
}

// checkDeps reports every package of the module that pkg depends on and
// forbid names (or every one, for "*"), but for those in except.
func checkDeps(t *testing.T, deps map[string][]string, pkg string, forbid, except []string) {
	t.Helper()
	own, ok := deps[pkg]
	if !ok {
		t.Errorf("package %q is not in the module any more; update TestImportGraph", path(pkg))
		return
	}
	for _, d := range own {
		if slices.Contains(except, d) || strings.HasPrefix(d, "internal/") {
			continue
		}
		if slices.Contains(forbid, "*") || slices.ContainsFunc(forbid, func(f string) bool { return d == f || strings.HasPrefix(d, f+"/") }) {
			t.Errorf("%s depends on %s", path(pkg), path(d))
		}
	}
}

// moduleDeps maps each non-test package of the module (by its path in
// the module, "" for the root) to the module's packages it depends on,
// directly or not.
func moduleDeps(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		pkg, ok := inModule(f[0])
		if !ok {
			continue
		}
		deps[pkg] = []string{}
		for _, d := range f[1:] {
			if p, ok := inModule(d); ok {
				deps[pkg] = append(deps[pkg], p)
			}
		}
	}
	if len(deps["controller"]) == 0 {
		t.Fatalf("go list gave no dependencies of the controller; the check proves nothing:\n%.500s", out)
	}
	return deps
}

func inModule(importPath string) (string, bool) {
	if importPath == module {
		return "", true
	}
	p, ok := strings.CutPrefix(importPath, module+"/")
	return p, ok
}

func path(pkg string) string {
	if pkg == "" {
		return module
	}
	return module + "/" + pkg
}

package ferry

import "strings"

// CommandEnv is the environment ferry gives the commands a build runs for
// the app (its test, build and integration commands, go build): from
// ferry's own environment (environ, as os.Environ returns it) only what a
// toolchain needs to find itself, its caches and the network — never
// ferry's other variables, which may hold its secrets (a webhook secret,
// the ledger's password, a registry token), since a commit's tests are
// code anyone who can push has written. extra (KEY=VALUE) follow.
func CommandEnv(environ []string, extra ...string) []string {
	var out []string
	for _, kv := range environ {
		name, _, ok := strings.Cut(kv, "=")
		if ok && passedToCommands(name) {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// commandVars are the variables CommandEnv keeps, and commandPrefixes
// the families of them.
var (
	commandVars = map[string]bool{
		"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true, "TMPDIR": true, "TZ": true,
		"LANG": true, "TERM": true, "SSL_CERT_FILE": true, "SSL_CERT_DIR": true,
		"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true, "http_proxy": true, "https_proxy": true, "no_proxy": true,
		"XDG_CACHE_HOME": true, "DOCKER_HOST": true, "DOCKER_CONFIG": true,
	}
	commandPrefixes = []string{"LC_", "GO", "CGO_"}
)

func passedToCommands(name string) bool {
	if commandVars[name] {
		return true
	}
	for _, p := range commandPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

package config

import "fmt"

// RedundancyGaps lists what the configuration lacks for several ferry
// servers to share its ledger, one leading and the others standing by to
// take over: each gap is a sentence naming the setting to change. None
// means a second server may start as a standby; with any, a second server
// refuses to start, since it would split the brain or could not take over.
func (c *Config) RedundancyGaps() []string {
	var gaps []string
	if c.Ledger.Engine != "postgres" {
		gaps = append(gaps, "ledger: a SQLite ledger is one server's file; use a PostgreSQL ledger (ledger: postgres://…)")
	}
	if c.RegistryEmbedded() {
		gaps = append(gaps, "registry: the embedded registry lives in one server's data directory, so the others could not pull its images; set registry.image to an external OCI registry")
	}
	if c.Signing.Key == "" {
		gaps = append(gaps, "signing.key: unset, so each server would sign and verify with a key of its own data directory; give every server the same key file")
	}
	for _, e := range c.Environments {
		if e.Runtime.Local != nil {
			gaps = append(gaps, fmt.Sprintf("environments.%s.runtime: the local runtime runs replicas on the leading server's machine, where no other server can take them over; use runtime.kubernetes", e.Name))
		}
	}
	return gaps
}

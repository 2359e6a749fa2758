package config

import (
	"testing"

	"github.com/ferryhq/ferry"
)

func TestParseResources(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want ferry.Resources
	}{
		{`{ listen: ":8081" }`, ferry.Resources{}},
		{`{ listen: ":8081", resources: { memory: 256Mi } }`, ferry.Resources{Memory: 256 << 20}},
		{`{ listen: ":8081", resources: { memory: 1G, cpu: 500m, pids: 64 } }`, ferry.Resources{Memory: 1e9, MilliCPU: 500, Pids: 64}},
		{`{ listen: ":8081", resources: { memory: 134217728, cpu: 2 } }`, ferry.Resources{Memory: 128 << 20, MilliCPU: 2000}},
		{`{ listen: ":8081", resources: { cpu: 0.25 } }`, ferry.Resources{MilliCPU: 250}},
	} {
		text := "app: demo\nsource:\n  repo: ../repos/demo.git\nbuild:\n  go: { main: ./cmd/demo }\nenvironments:\n  dev:\n    branch: master\n    runtime: { local: " + tc.yaml + " }\n"
		c := mustParse(t, "ferry.yaml", text)
		if got := c.Environments[0].Runtime.Local.Resources; got != tc.want {
			t.Errorf("local %s: Resources = %+v, want %+v", tc.yaml, got, tc.want)
		}
	}
}

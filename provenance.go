package ferry

import "time"

// Provenance is what ferry vouches for when it signs a build's image: the
// facts of the build that made the digest, written into the in-toto / SLSA
// provenance attestation stored next to the image. A rollout checks the
// attested commit against the ledger's build record.
type Provenance struct {
	App     string
	BuildID int64
	Commit  string
	Branch  string
	// Source is the app's repository, as ferry fetches it.
	Source string
	// Image is the repository the digest lives in (host/path).
	Image string
	// Test is the test command that ran, empty when none is configured;
	// TestResult is "passed" or "skipped".
	Test       string
	TestResult string
	// Builder names the ferry that built the image (SLSA builder.id).
	Builder string
	// Started is when the build started, Finished when its image was
	// pushed, tested and signed.
	Started, Finished time.Time
}

// Test results recorded in Provenance.
const (
	TestPassed  = "passed"
	TestSkipped = "skipped"
)

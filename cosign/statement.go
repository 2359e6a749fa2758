package cosign

import (
	"crypto"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
)

// The in-toto and SLSA names ferry's attestation uses: an in-toto
// Statement v0.1 with a SLSA provenance v0.2 predicate, what
// `cosign verify-attestation --type slsaprovenance` looks for.
const (
	StatementType       = "https://in-toto.io/Statement/v0.1"
	SLSAPredicateType   = "https://slsa.dev/provenance/v0.2"
	InTotoPayloadType   = "application/vnd.in-toto+json"
	BuildType           = "https://github.com/ferryhq/ferry/build@v1"
	simpleSigningType   = "application/vnd.dev.cosign.simplesigning.v1+json"
	dsseEnvelopeType    = "application/vnd.dsse.envelope.v1+json"
	signatureAnnotation = "dev.cosignproject.cosign/signature"
	cryptoHash          = crypto.SHA256
)

type statement struct {
	Type          string    `json:"_type"`
	PredicateType string    `json:"predicateType"`
	Subject       []subject `json:"subject"`
	Predicate     predicate `json:"predicate"`
}

type subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// predicate is SLSA provenance v0.2.
type predicate struct {
	Builder struct {
		ID string `json:"id"`
	} `json:"builder"`
	BuildType  string     `json:"buildType"`
	Invocation invocation `json:"invocation"`
	Metadata   metadata   `json:"metadata"`
	Materials  []material `json:"materials"`
}

type invocation struct {
	ConfigSource material   `json:"configSource"`
	Parameters   parameters `json:"parameters"`
}

type material struct {
	URI        string            `json:"uri"`
	Digest     map[string]string `json:"digest"`
	EntryPoint string            `json:"entryPoint,omitempty"`
}

// parameters are ferry's own: what was built and how it was tested.
type parameters struct {
	App    string     `json:"app"`
	Build  int64      `json:"build"`
	Branch string     `json:"branch"`
	Test   testResult `json:"test"`
}

type testResult struct {
	Command string `json:"command"`
	Result  string `json:"result"`
}

type metadata struct {
	InvocationID string    `json:"buildInvocationId"`
	Started      time.Time `json:"buildStartedOn"`
	Finished     time.Time `json:"buildFinishedOn"`
	Completeness struct {
		Parameters  bool `json:"parameters"`
		Environment bool `json:"environment"`
		Materials   bool `json:"materials"`
	} `json:"completeness"`
	Reproducible bool `json:"reproducible"`
}

// newStatement is the attestation of p about digest ("sha256:…").
func newStatement(digest string, p ferry.Provenance) statement {
	hex := strings.TrimPrefix(digest, "sha256:")
	src := material{URI: "git+" + p.Source, Digest: map[string]string{"sha1": p.Commit}}
	st := statement{
		Type: StatementType, PredicateType: SLSAPredicateType,
		Subject: []subject{{Name: p.Image, Digest: map[string]string{"sha256": hex}}},
	}
	pr := &st.Predicate
	pr.Builder.ID = p.Builder
	pr.BuildType = BuildType
	pr.Invocation.ConfigSource = material{URI: src.URI + "@refs/heads/" + p.Branch, Digest: src.Digest, EntryPoint: "ferry.yaml"}
	pr.Invocation.Parameters = parameters{App: p.App, Build: p.BuildID, Branch: p.Branch, Test: testResult{Command: p.Test, Result: p.TestResult}}
	pr.Metadata.InvocationID = p.App + "/builds/" + strconv.FormatInt(p.BuildID, 10)
	pr.Metadata.Started, pr.Metadata.Finished = p.Started.UTC(), p.Finished.UTC()
	pr.Metadata.Completeness.Parameters, pr.Metadata.Completeness.Materials = true, true
	pr.Materials = []material{src}
	return st
}

// commit is the commit the statement attests the image was built from.
func (st statement) commit() string { return st.Predicate.Invocation.ConfigSource.Digest["sha1"] }

// names reports whether the statement's subject is digest.
func (st statement) names(digest string) bool {
	hex := strings.TrimPrefix(digest, "sha256:")
	for _, s := range st.Subject {
		if s.Digest["sha256"] == hex {
			return true
		}
	}
	return false
}

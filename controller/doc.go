// Package controller decides what each environment runs and makes it so:
// it keeps the desired state per environment (dev: the newest succeeded
// build of its branch), runs one rollout at a time per environment through
// its ferry.Runtime — each only after the digest's signature and provenance
// verified against ferry's key and the ledger's build (Verifier) — verifies, reverts a failed rollout to the previous digest, and
// records every deployment and event in the ledger.
package controller

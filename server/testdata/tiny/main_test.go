package main

import "testing"

func TestCommitDefault(t *testing.T) {
	if commit != "unknown" {
		t.Fatalf("commit = %q, want unknown in tests", commit)
	}
}

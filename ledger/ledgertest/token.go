package ledgertest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// tokenHash returns a distinct, valid hex SHA-256 for i.
func tokenHash(i int) string { return fmt.Sprintf("%064x", 0x70c3e000+i) }

func newToken(name string, role ferry.Role, i int) *ferry.Token {
	return &ferry.Token{
		Name: name, Role: role, Hash: tokenHash(i),
		CreatedAt: at(time.Duration(i) * time.Minute), CreatedBy: "ada",
	}
}

// utcToken is t as the ledger gives it back.
func utcToken(t *ferry.Token) *ferry.Token {
	c := *t
	c.CreatedAt, c.LastUsedAt, c.RevokedAt = utc(c.CreatedAt), utc(c.LastUsedAt), utc(c.RevokedAt)
	return &c
}

// tokenJSON encodes tokens with their hashes, which ferry.Token's JSON
// leaves out.
func tokenJSON(ts ...*ferry.Token) []map[string]any {
	out := []map[string]any{}
	for _, t := range ts {
		var m map[string]any
		b, _ := json.Marshal(t)
		_ = json.Unmarshal(b, &m)
		m["hash"] = t.Hash
		out = append(out, m)
	}
	return out
}

func testTokens(t *testing.T, open OpenFunc) {
	s := mustOpen(t, open)
	ctx := t.Context()
	empty, err := s.Tokens(ctx)
	if err != nil {
		t.Fatalf("Tokens() on an empty ledger = %v", err)
	}
	if j, _ := json.Marshal(empty); string(j) != "[]" {
		t.Errorf("Tokens() on an empty ledger encodes as %s, want []", j)
	}

	ci := newToken("ci", ferry.RoleDeployer, 1)
	ada := newToken("ada@example.com", ferry.RoleAdmin, 2)
	ada.LastUsedAt = at(3 * time.Minute)
	for _, tok := range []*ferry.Token{ci, ada} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken(%s) = %v", tok.Name, err)
		}
	}
	if ci.ID <= 0 || ada.ID <= ci.ID {
		t.Errorf("CreateToken set IDs %d, %d, want increasing positive IDs", ci.ID, ada.ID)
	}
	got, err := s.TokenByHash(ctx, ci.Hash)
	if err != nil {
		t.Fatalf("TokenByHash(ci) = %v", err)
	}
	same(t, "TokenByHash(ci)", tokenJSON(got), tokenJSON(utcToken(ci)))
	list, err := s.Tokens(ctx)
	if err != nil {
		t.Fatalf("Tokens() = %v", err)
	}
	same(t, "Tokens()", tokenJSON(list...), tokenJSON(utcToken(ada), utcToken(ci)))

	_, err = s.TokenByHash(ctx, tokenHash(99))
	wantCode(t, "TokenByHash(unknown)", err, ferry.ENOTFOUND)
	if strings.Contains(ferry.ErrorMessage(err), tokenHash(99)) {
		t.Errorf("TokenByHash(unknown) message %q repeats the hash", ferry.ErrorMessage(err))
	}

	// Refused input changes nothing.
	invalid := []struct {
		name string
		tok  *ferry.Token
	}{
		{"empty name", newToken("", ferry.RoleViewer, 10)},
		{"name with a space", newToken("a b", ferry.RoleViewer, 11)},
		{"name starting with -", newToken("-rf", ferry.RoleViewer, 12)},
		{"name of 65 characters", newToken(strings.Repeat("x", 65), ferry.RoleViewer, 13)},
		{"unknown role", newToken("x1", "root", 14)},
		{"empty role", newToken("x2", "", 15)},
		{"short hash", &ferry.Token{Name: "x3", Role: ferry.RoleViewer, Hash: "abc", CreatedAt: t0}},
		{"upper-case hash", &ferry.Token{Name: "x4", Role: ferry.RoleViewer, Hash: strings.ToUpper(tokenHash(16)), CreatedAt: t0}},
		{"secret instead of hash", &ferry.Token{Name: "x5", Role: ferry.RoleViewer, Hash: "ferry_" + tokenHash(17)[6:], CreatedAt: t0}},
		{"no creation time", &ferry.Token{Name: "x6", Role: ferry.RoleViewer, Hash: tokenHash(18)}},
	}
	for _, tt := range invalid {
		wantCode(t, "CreateToken("+tt.name+")", s.CreateToken(ctx, tt.tok), ferry.EINVALID)
	}
	dupName := newToken("ci", ferry.RoleAdmin, 20)
	err = s.CreateToken(ctx, dupName)
	wantCode(t, "CreateToken(same name)", err, ferry.ECONFLICT)
	if !strings.Contains(ferry.ErrorMessage(err), `"ci"`) {
		t.Errorf("CreateToken(same name) message = %q, want it to name the token", ferry.ErrorMessage(err))
	}
	dupHash := newToken("other", ferry.RoleViewer, 1)
	wantCode(t, "CreateToken(same hash)", s.CreateToken(ctx, dupHash), ferry.ECONFLICT)
	if list, _ := s.Tokens(ctx); len(list) != 2 {
		t.Errorf("after refused creations Tokens() has %d tokens, want 2", len(list))
	}

	// Touch: later times move LastUsedAt, earlier ones do not.
	if err := s.TouchToken(ctx, ci.ID, at(time.Hour)); err != nil {
		t.Fatalf("TouchToken(ci) = %v", err)
	}
	if err := s.TouchToken(ctx, ci.ID, at(30*time.Minute)); err != nil {
		t.Fatalf("TouchToken(ci, earlier) = %v", err)
	}
	if err := s.TouchToken(ctx, ada.ID, at(time.Minute)); err != nil { // before its stored 3m
		t.Fatalf("TouchToken(ada, earlier) = %v", err)
	}
	wantCode(t, "TouchToken(unknown)", s.TouchToken(ctx, ada.ID+100, at(time.Hour)), ferry.ENOTFOUND)
	ci.LastUsedAt = at(time.Hour)
	got, err = s.TokenByHash(ctx, ci.Hash)
	if err != nil {
		t.Fatalf("TokenByHash(ci) = %v", err)
	}
	same(t, "TokenByHash(ci) after touches", tokenJSON(got), tokenJSON(utcToken(ci)))
	got, _ = s.TokenByHash(ctx, ada.Hash)
	if !got.LastUsedAt.Equal(ada.LastUsedAt) {
		t.Errorf("after an earlier touch ada.LastUsedAt = %v, want %v kept", got.LastUsedAt, ada.LastUsedAt)
	}

	// Revoke: final, the first time is kept, the name stays taken.
	if err := s.RevokeToken(ctx, "ci", at(2*time.Hour)); err != nil {
		t.Fatalf("RevokeToken(ci) = %v", err)
	}
	err = s.RevokeToken(ctx, "ci", at(3*time.Hour))
	wantCode(t, "RevokeToken(ci) again", err, ferry.ECONFLICT)
	if !strings.Contains(ferry.ErrorMessage(err), "already revoked") {
		t.Errorf("RevokeToken(ci) again message = %q, want it to say already revoked", ferry.ErrorMessage(err))
	}
	wantCode(t, "RevokeToken(unknown)", s.RevokeToken(ctx, "nobody", at(time.Hour)), ferry.ENOTFOUND)
	wantCode(t, "RevokeToken(no time)", s.RevokeToken(ctx, "ada@example.com", time.Time{}), ferry.EINVALID)
	wantCode(t, "CreateToken(name of a revoked token)", s.CreateToken(ctx, newToken("ci", ferry.RoleViewer, 21)), ferry.ECONFLICT)
	got, err = s.TokenByHash(ctx, ci.Hash)
	if err != nil {
		t.Fatalf("TokenByHash(revoked ci) = %v, want the token, revoked", err)
	}
	ci.RevokedAt = at(2 * time.Hour)
	same(t, "TokenByHash(revoked ci)", tokenJSON(got), tokenJSON(utcToken(ci)))
	if !got.Revoked() {
		t.Errorf("revoked token: Revoked() = false")
	}

	// Tokens survive reopening.
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	s = mustOpen(t, open)
	list, err = s.Tokens(ctx)
	if err != nil {
		t.Fatalf("Tokens() after reopen = %v", err)
	}
	same(t, "Tokens() after reopen", tokenJSON(list...), tokenJSON(utcToken(ada), utcToken(ci)))
}

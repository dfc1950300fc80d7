package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/audit"
	"github.com/refit-dev/refit/internal/pgtest"
	"github.com/refit-dev/refit/internal/server"
)

// auditScenario writes about 50 audit entries through the API, as users
// would: tasks created, updated and deleted, manual runs, tokens
// created and revoked, registry logins stored and removed,
// subscriptions. It returns the number of entries.
func auditScenario(t *testing.T, a *contractAPI) int {
	t.Helper()
	spec := func(name, arg string) api.TaskSpec {
		return api.TaskSpec{Name: name, Source: api.TaskSource{Dir: "/src/" + name}, BuildArgs: map[string]string{"V": arg}}
	}
	for i := range 8 {
		call[api.Task](t, a, "POST", "/api/v1/tasks", spec(fmt.Sprintf("t%d", i), "1"), http.StatusCreated)
	}
	for i := range 8 {
		call[api.PutResult](t, a, "PUT", fmt.Sprintf("/api/v1/tasks/t%d", i), spec(fmt.Sprintf("t%d", i), "2"), http.StatusOK)
	}
	for i := range 8 {
		call[api.Run](t, a, "POST", fmt.Sprintf("/api/v1/tasks/t%d/runs", i), nil, http.StatusCreated)
	}
	for i := range 6 {
		call[api.NewToken](t, a, "POST", "/api/v1/tokens", api.TokenRequest{User: fmt.Sprintf("u%d", i), Roles: []string{"viewer"}}, http.StatusCreated)
	}
	for i := range 3 {
		call[api.RevokeResult](t, a, "DELETE", fmt.Sprintf("/api/v1/tokens/u%d", i), nil, http.StatusOK)
	}
	for i := range 6 {
		call[api.RegistryCredential](t, a, "PUT", fmt.Sprintf("/api/v1/registries/r%d.example", i), api.CredentialRequest{Username: "robot", Password: "pw"}, http.StatusOK)
	}
	for i := range 3 {
		a.do(t, "DELETE", fmt.Sprintf("/api/v1/registries/r%d.example", i), nil)
	}
	for range 3 {
		call[api.Subscription](t, a, "POST", "/api/v1/subscriptions", api.SubscriptionRequest{URL: "http://127.0.0.1:1/h"}, http.StatusCreated)
	}
	for i := range 4 {
		a.do(t, "DELETE", fmt.Sprintf("/api/v1/tasks/t%d", i), nil)
	}
	es := call[[]api.AuditEntry](t, a, "GET", "/api/v1/audit?limit=1000", nil, http.StatusOK)
	return len(es)
}

func verify(t *testing.T, a *contractAPI) api.AuditVerification {
	t.Helper()
	return call[api.AuditVerification](t, a, "GET", "/api/v1/audit:verify", nil, http.StatusOK)
}

// TestAuditTamper: after a scenario of about 50 entries the chain
// verifies; then one entry's details are altered, one entry is deleted
// and two are swapped, directly in the database (on SQLite, or
// PostgreSQL with REFIT_TEST_POSTGRES=1), as someone with access to it
// would — and each time verify names the first broken entry.
func TestAuditTamper(t *testing.T) {
	a := startContractAPI(t)
	ctx := context.Background()
	n := auditScenario(t, a)
	if n < 45 {
		t.Fatalf("the scenario wrote %d audit entries, want about 50", n)
	}
	if v := verify(t, a); !v.OK || v.Entries != int64(n) || v.HeadSeq != int64(n) {
		t.Fatalf("verify after the scenario = %+v, want %d entries intact", v, n)
	}

	db := a.st.DB()
	// refit cannot change an entry: the database refuses.
	if _, err := db.ExecContext(ctx, `UPDATE audit_log SET actor = 'mallory' WHERE seq = 3`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("updating an entry: %v, want the append-only refusal", err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM audit_log WHERE seq = 3`); err == nil {
		t.Fatal("deleting an entry: no error, want the append-only refusal")
	}
	// Someone who can drop the guard can change the log.
	drop := []string{`DROP TRIGGER audit_log_no_update`, `DROP TRIGGER audit_log_no_delete`}
	if pgtest.Wanted() {
		drop = []string{`DROP TRIGGER audit_log_append_only ON audit_log`}
	}
	for _, q := range drop {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	expectBroken := func(what string, seq int64) {
		t.Helper()
		v := verify(t, a)
		if v.OK || v.Broken == nil || v.Broken.Seq != seq || v.Entries != seq-1 {
			t.Fatalf("after %s: verify = %+v, want broken at entry %d", what, v, seq)
		}
		t.Logf("after %s: %s", what, v.Broken.Reason)
	}

	// Alter one entry's details.
	var details string
	if err := db.QueryRowContext(ctx, `SELECT details FROM audit_log WHERE seq = 17`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	exec(`UPDATE audit_log SET details = $1 WHERE seq = 17`, strings.Replace(details, "}", `,"note":"harmless"}`, 1))
	expectBroken("altering entry 17's details", 17)
	exec(`UPDATE audit_log SET details = $1 WHERE seq = 17`, details)
	if v := verify(t, a); !v.OK {
		t.Fatalf("restored entry 17, verify = %+v", v)
	}

	// Alter and rehash it (without the key to the chain's later links).
	var row struct {
		seq                                               int64
		time, actor, action, subject, details, prev, hash string
	}
	if err := db.QueryRowContext(ctx, `SELECT seq, time, actor, action, subject, details, prev_hash, hash FROM audit_log WHERE seq = 20`).
		Scan(&row.seq, &row.time, &row.actor, &row.action, &row.subject, &row.details, &row.prev, &row.hash); err != nil {
		t.Fatal(err)
	}
	forged := apiEntry(t, row.seq, row.time, "mallory", row.action, row.subject, row.details, row.prev)
	exec(`UPDATE audit_log SET actor = 'mallory', hash = $1 WHERE seq = 20`, audit.Hash(forged))
	expectBroken("rewriting and rehashing entry 20", 20)
	exec(`UPDATE audit_log SET actor = $1, hash = $2 WHERE seq = 20`, row.actor, row.hash)

	// Delete one, then put it back.
	var saved [8]any
	var sv [8]string
	var seq int64
	if err := db.QueryRowContext(ctx, `SELECT seq, time, actor, action, subject, details, prev_hash, hash FROM audit_log WHERE seq = 23`).
		Scan(&seq, &sv[1], &sv[2], &sv[3], &sv[4], &sv[5], &sv[6], &sv[7]); err != nil {
		t.Fatal(err)
	}
	saved[0] = seq
	for i := 1; i < 8; i++ {
		saved[i] = sv[i]
	}
	exec(`DELETE FROM audit_log WHERE seq = 23`)
	expectBroken("deleting entry 23", 23)
	exec(`INSERT INTO audit_log (seq, time, actor, action, subject, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, saved[:]...)
	if v := verify(t, a); !v.OK {
		t.Fatalf("restored entry 23, verify = %+v", v)
	}

	// Swap two (their seq numbers), then back.
	swap := func(x, y int) {
		exec(`UPDATE audit_log SET seq = -1 WHERE seq = $1`, y)
		exec(`UPDATE audit_log SET seq = $1 WHERE seq = $2`, y, x)
		exec(`UPDATE audit_log SET seq = $1 WHERE seq = -1`, x)
	}
	swap(30, 31)
	expectBroken("swapping entries 30 and 31", 30)
	swap(30, 31)
	if v := verify(t, a); !v.OK || v.Entries != int64(n) {
		t.Fatalf("swapped back, verify = %+v", v)
	}

	// Deleting the first entry breaks the chain at 1.
	exec(`DELETE FROM audit_log WHERE seq = 1`)
	expectBroken("deleting entry 1", 1)
}

func apiEntry(t *testing.T, seq int64, tm, actor, action, subject, details, prev string) audit.Entry {
	t.Helper()
	var e audit.Entry
	b, _ := json.Marshal(map[string]any{"seq": seq, "time": tm, "actor": actor, "action": action, "subject": subject,
		"details": json.RawMessage(details), "prevHash": prev})
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestAuditExportTamper: an export verifies offline with the server's
// public key; edited by hand — an entry changed, removed or cut from the
// end, the checkpoint removed, changed or signed by another key — it
// fails, naming the first broken entry where there is one.
func TestAuditExportTamper(t *testing.T) {
	key := testSigningKey("export test key")
	a := startContractAPIWith(t, func(c *server.Config) { c.AuditKey = key })
	n := auditScenario(t, a)
	code, export := a.do(t, "GET", "/api/v1/audit:export", nil)
	if code != http.StatusOK {
		t.Fatalf("export = %d %s", code, export)
	}
	pub := key.Public().(ed25519.PublicKey)
	res, err := audit.ReadExport(strings.NewReader(export), pub, 0)
	if err != nil || res.Entries != int64(n) || res.Checkpoint.Seq != int64(n) {
		t.Fatalf("the export as served: %+v, %v; want %d entries, verified", res, err, n)
	}
	lines := strings.SplitAfter(export, "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	if len(lines) != n+1 {
		t.Fatalf("export has %d lines, want %d entries and a checkpoint", len(lines), n)
	}
	join := func(ls ...[]string) string {
		var b strings.Builder
		for _, l := range ls {
			b.WriteString(strings.Join(l, ""))
		}
		return b.String()
	}
	edit := func(i int, fn func(map[string]any)) []string {
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Fatal(err)
		}
		fn(m)
		b, _ := json.Marshal(m)
		out := append([]string{}, lines...)
		out[i] = string(b) + "\n"
		return out
	}
	other := testSigningKey("someone else's key")
	forged := audit.Sign(other, res.Head.Seq, res.Head.Hash, res.Checkpoint.Time)
	forgedLine, _ := json.Marshal(audit.Line{Checkpoint: &forged})

	for _, c := range []struct {
		name    string
		file    string
		trusted ed25519.PublicKey
		seq     int64  // the broken entry named, or 0
		msg     string // else the error says this
	}{
		{"entry 12's actor changed", join(edit(11, func(m map[string]any) { m["actor"] = "mallory" })), pub, 12, ""},
		{"entry 5's details changed", join(edit(4, func(m map[string]any) { m["details"] = map[string]any{} })), pub, 5, ""},
		{"entry 9 removed", join(lines[:8], lines[9:]), pub, 9, ""},
		{"entries 3 and 4 swapped", join(lines[:2], lines[3:4], lines[2:3], lines[4:]), pub, 3, "moved"},
		{"the last entry cut", join(lines[:n-1], lines[n:]), pub, int64(n), ""},
		{"the checkpoint removed", join(lines[:n]), pub, 0, "no checkpoint"},
		{"the checkpoint's seq changed", join(lines[:n], edit(n, func(m map[string]any) { m["checkpoint"].(map[string]any)["seq"] = n - 1 })[n:]), pub, 0, "signature does not verify"},
		{"signed by another key", join(lines[:n], []string{string(forgedLine) + "\n"}), pub, 0, "not by the trusted key"},
		{"a line after the checkpoint", export + lines[0], pub, 0, "nothing may follow"},
		{"an unknown field", join(edit(0, func(m map[string]any) { m["extra"] = 1 })), pub, 0, "unknown field"},
	} {
		_, err := audit.ReadExport(strings.NewReader(c.file), c.trusted, 0)
		var be *audit.BreakError
		switch {
		case err == nil:
			t.Errorf("%s: the file verifies, want it refused", c.name)
		case c.seq != 0 && (!errors.As(err, &be) || be.Seq != c.seq):
			t.Errorf("%s: %v, want it broken at entry %d", c.name, err, c.seq)
		case c.msg != "" && !strings.Contains(err.Error(), c.msg):
			t.Errorf("%s: %v, want %q", c.name, err, c.msg)
		}
	}
	// Without a trusted key the signature still has to hold; who signed
	// is for the reader to check (the key is printed).
	if r, err := audit.ReadExport(strings.NewReader(join(lines[:n], []string{string(forgedLine) + "\n"})), nil, 0); err != nil || r.Checkpoint.PublicKey == audit.PublicKeyString(pub) {
		t.Errorf("re-signed export without a trusted key: %+v, %v; want it read, naming the other key", r, err)
	}
}

// TestAuditNoSecrets: a secret given to a task (a build argument, the
// password in a git URL), a registry login's password, a subscription's
// secret and a new token's secret appear in no audit entry — listed,
// exported or read from the table — nor in the server's log; the login
// password and the token are in no byte of the database file either.
func TestAuditNoSecrets(t *testing.T) {
	var logs bytes.Buffer
	a := startContractAPIWith(t, func(c *server.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := context.Background()
	secrets := []string{"BUILDARG-s3cr3t-7731", "BUILDARG-s3cr3t-8842", "GITPASS-s3cr3t-1234", "LOGINPASS-s3cr3t-9911", "SUBSECRET-s3cr3t-4455"}
	spec := api.TaskSpec{Name: "app", Source: api.TaskSource{Git: "https://robot:" + secrets[2] + "@git.example/app.git"},
		BuildArgs: map[string]string{"NPM_TOKEN": secrets[0], "PLAIN": "visible-value"}}
	call[api.Task](t, a, "POST", "/api/v1/tasks", spec, http.StatusCreated)
	spec.BuildArgs["NPM_TOKEN"] = secrets[1]
	call[api.PutResult](t, a, "PUT", "/api/v1/tasks/app", spec, http.StatusOK)
	call[api.Run](t, a, "POST", "/api/v1/tasks/app/runs", nil, http.StatusCreated)
	call[api.RegistryCredential](t, a, "PUT", "/api/v1/registries/ghcr.io", api.CredentialRequest{Username: "robot", Password: secrets[3]}, http.StatusOK)
	call[api.Subscription](t, a, "POST", "/api/v1/subscriptions", api.SubscriptionRequest{URL: "http://127.0.0.1:1/h", Secret: secrets[4]}, http.StatusCreated)
	tok := call[api.NewToken](t, a, "POST", "/api/v1/tokens", api.TokenRequest{User: "ci", Roles: []string{"operator"}}, http.StatusCreated)
	secrets = append(secrets, tok.Secret)
	if code, _ := a.do(t, "DELETE", "/api/v1/tasks/app", nil); code != http.StatusNoContent {
		t.Fatalf("delete task = %d", code)
	}

	_, list := a.do(t, "GET", "/api/v1/audit?limit=1000", nil)
	_, export := a.do(t, "GET", "/api/v1/audit:export", nil)
	var table strings.Builder
	rows, err := a.st.DB().QueryContext(ctx, `SELECT seq, time, actor, action, subject, details, prev_hash, hash FROM audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var f [8]string
		if err := rows.Scan(&f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7]); err != nil {
			t.Fatal(err)
		}
		table.WriteString(strings.Join(f[:], "|") + "\n")
	}
	rows.Close()
	for _, want := range []string{`"task.update"`, `"changedBuildArgs":["NPM_TOKEN"]`, `"PLAIN":"[redacted]"`, "git.example/app.git", `"signed":true`, `"username":"robot"`} {
		if !strings.Contains(list, want) && !strings.Contains(table.String(), want) {
			t.Errorf("the audit log lacks %s (it should say what changed):\n%s", want, table.String())
		}
	}
	for _, s := range secrets {
		for what, text := range map[string]string{"GET /audit": list, "the export": export, "the audit_log table": table.String(), "the server log": logs.String()} {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the secret %s", what, s)
			}
		}
	}
	if !pgtest.Wanted() {
		for _, name := range []string{"refit.db", "refit.db-wal"} {
			b, err := os.ReadFile(filepath.Join(a.data, name))
			if err != nil {
				continue
			}
			for _, s := range []string{secrets[3], tok.Secret} {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%s holds the secret %s in the clear", name, s)
				}
			}
		}
	}
}

// testSigningKey is a fixed ed25519 key named by s, standing in for the
// server's signing key.
func testSigningKey(s string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(s))
	return ed25519.NewKeyFromSeed(seed[:])
}

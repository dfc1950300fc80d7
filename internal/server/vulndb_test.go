package server_test

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/server"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/vulndb"
	"github.com/refit-dev/refit/internal/vulndb/osvtest"
)

// TestVulnDBImportRefusals: over real HTTP on a real store, an export
// with a hostile record is a 400 naming the file, a body beyond the
// server's limit is a 413 naming the limit and the flag, an empty body is
// a 400, no token is a 401 — and after each, the database is the last
// good import, untouched; the spooled upload is removed, and so is one
// an earlier server left behind.
func TestVulnDBImportRefusals(t *testing.T) {
	_, st, _ := openState(t)
	tmp := t.TempDir()
	// An upload left by a server that died mid-import is removed when the
	// next one starts; other files stay.
	for _, f := range []string{"refit-vulndb-123.zip", "keep.zip"} {
		if err := os.WriteFile(filepath.Join(tmp, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(server.New(server.Config{Store: st, Events: st, Index: st,
		VulnDB: vulndb.New(vulndb.Config{Store: st}), VulnDBMaxBytes: 64 << 10, TempDir: tmp}))
	t.Cleanup(srv.Close)
	token, err := st.NewToken(t.Context(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	a := &apiServer{url: srv.URL, token: token, st: st}

	code, text := a.do(t, "POST", "/api/v1/vulndb", string(osvtest.Zip(osvtest.Fixture())))
	if code != http.StatusOK {
		t.Fatalf("import = %d %s", code, text)
	}
	_, good := a.do(t, "GET", "/api/v1/vulndb", nil)

	hostile := osvtest.Fixture()
	hostile["DEBIAN-CVE-2024-6666.json"] = `{"id":"DEBIAN-CVE-2024-6666","affected":[{"package":{"ecosystem":"Debian:12","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":"nope"}]}]}`
	big := osvtest.Fixture()
	big["padding.txt"] = randomText(200 << 10) // deflates to more than 64 KiB
	for _, c := range []struct {
		name string
		body string
		code int
		want []string
	}{
		{"hostile record", string(osvtest.Zip(hostile)), http.StatusBadRequest, []string{`\"DEBIAN-CVE-2024-6666.json\"`, "not an OSV record", "unchanged"}},
		{"over the limit", string(osvtest.Zip(big)), http.StatusRequestEntityTooLarge, []string{"64 KiB", "--vulndb-max-bytes"}},
		{"empty body", "", http.StatusBadRequest, []string{"empty"}},
		{"not a zip", "hello", http.StatusBadRequest, []string{"not an OSV export"}},
	} {
		code, text := a.do(t, "POST", "/api/v1/vulndb", c.body)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, text, c.code)
		}
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: answer %s does not say %s", c.name, text, w)
			}
		}
		if _, now := a.do(t, "GET", "/api/v1/vulndb", nil); now != good {
			t.Errorf("%s: status changed to %s, want %s", c.name, now, good)
		}
	}
	// The one good import is audited, with the file's hash; the refusals
	// rolled back theirs.
	entries, err := st.AuditEntries(t.Context(), store.AuditFilter{Action: "vulndb.import"})
	if err != nil || len(entries) != 1 || entries[0].Actor != "admin" || entries[0].Subject != "vulndb" ||
		!strings.Contains(string(entries[0].Details), `"advisories":6`) || !strings.Contains(string(entries[0].Details), `"sha256":"`) {
		t.Errorf("vulndb.import audit entries = %+v, %v; want one by admin with the counts and hash", entries, err)
	}
	// A viewer may read the status, not replace the database.
	_, viewer, err := st.CreateToken(t.Context(), "vera", []string{"viewer"})
	if err != nil {
		t.Fatal(err)
	}
	asViewer := &apiServer{url: srv.URL, token: viewer}
	if code, _ := asViewer.do(t, "GET", "/api/v1/vulndb", nil); code != http.StatusOK {
		t.Errorf("status as a viewer = %d, want 200", code)
	}
	if code, text := asViewer.do(t, "POST", "/api/v1/vulndb", string(osvtest.Zip(osvtest.Fixture()))); code != http.StatusForbidden || !strings.Contains(text, "operator") {
		t.Errorf("import as a viewer = %d %s, want 403 naming the operator role", code, text)
	}
	noToken := &apiServer{url: srv.URL}
	if code, _ := noToken.do(t, "POST", "/api/v1/vulndb", string(osvtest.Zip(osvtest.Fixture()))); code != http.StatusUnauthorized {
		t.Errorf("import without a token = %d, want 401", code)
	}
	var v api.VulnDBStatus
	if err := decodeStrict(good, &v); err != nil || v.Advisories != 6 {
		t.Errorf("status %s: %v", good, err)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) != 1 || filepath.Base(left[0]) != "keep.zip" {
		t.Errorf("uploads left in the temporary directory: %v", left)
	}
}

// randomText is n letters that deflate poorly.
func randomText(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('!' + r.IntN(94))
	}
	return string(b)
}

package serve_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/serve"
)

// TestWebhookBadNamesAre400: a registry notification with a valid secret
// but a repository name that is no image reference gets 400 naming the
// field — never the 500 a registry retries forever — in every format; it
// causes no check, no run, and does not use up its event ID, so the same
// ID with a good name is then taken.
func TestWebhookBadNamesAre400(t *testing.T) {
	reg := newTestRegistry(t, nil)
	secrets := map[string]string{}
	for _, f := range []string{"distribution", "harbor", "dockerhub", "acr"} {
		secrets[f] = "secret-for-" + f + "-0123456789"
	}
	r := startRefitWith(t, serve.Config{PollInterval: time.Hour, Debounce: -1, Insecure: []string{reg.host}, HookSecrets: secrets})
	ref := reg.host + "/hooks/good:1"
	_, first := pushBase(t, ref, "")
	createTask(t, r.c, "on-good", "FROM "+ref+"\n")
	waitChecked(t, r.c, ref, first)
	before := baseInfo(t, r.c, ref)

	type refused struct {
		format, contentType string
		body                []byte
		auth                func(*http.Request, []byte)
		field               string
	}
	var cases []refused
	for i, f := range hookFormats {
		field := map[string]string{"distribution": "events[0].target.repository",
			"harbor": "event_data.repository.repo_full_name", "acr": "events[0].data.target.repository"}[f.name]
		for j, repo := range []string{"Base/BB", "../../etc", "hooks/good bad", strings.Repeat("x", 300)} {
			cases = append(cases, refused{
				format: f.name, contentType: f.contentType, field: field + `: invalid repository name ` + strings.TrimSuffix(strconv.Quote(repo[:min(len(repo), 100)]), `"`),
				body: []byte(f.body(reg.host, repo, "1", first, fmt.Sprintf("bad-%d-%d", i, j))),
				auth: func(req *http.Request, body []byte) { f.auth(req, secrets[f.name], body) },
			})
		}
	}
	cases = append(cases, refused{
		format: "dockerhub", contentType: "application/json", body: []byte(dockerHubBody("Base/BB", "1")),
		auth:  func(req *http.Request, _ []byte) { req.Header.Set("Authorization", "Bearer "+secrets["dockerhub"]) },
		field: `repository.repo_name: invalid repository name "Base/BB"`,
	})
	for _, c := range cases {
		status, resp := postHook(t, r.APIURL, c.format, c.contentType, c.body, c.auth)
		var e struct{ Error string }
		json.Unmarshal([]byte(resp), &e)
		if status != http.StatusBadRequest || !strings.HasPrefix(e.Error, c.field) {
			t.Errorf("%s: %d %s, want 400 %q…", c.format, status, resp, c.field)
		}
	}

	// The bad notifications took nothing: no check, no run.
	time.Sleep(2 * time.Second)
	if b := baseInfo(t, r.c, ref); !b.CheckedAt.Equal(before.CheckedAt) {
		t.Errorf("%s checked at %v after refused notifications (before: %v)", ref, b.CheckedAt, before.CheckedAt)
	}
	if runs := allRuns(t, r.c); len(runs) != 0 {
		t.Errorf("%d runs after refused notifications, want none", len(runs))
	}
	// A refused notification did not record its event ID: the same ID
	// with a good name is taken and makes refit check the reference.
	good := hookFormats[0]
	body := []byte(good.body(reg.host, "hooks/good", "1", first, "bad-0-0"))
	status, resp := postHook(t, r.APIURL, good.name, good.contentType, body, func(req *http.Request, b []byte) { good.auth(req, secrets[good.name], b) })
	if status != http.StatusAccepted || resp != `{"accepted":1}` {
		t.Fatalf("good notification with a refused one's ID: %d %s, want 202", status, resp)
	}
	waitBase(t, r.c, ref, 30*time.Second, "a check after the good notification", func(b api.BaseInfo) bool {
		return b.CheckedAt.After(before.CheckedAt)
	})
}

package githook

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

const sha1 = "0123456789abcdef0123456789abcdef01234567"

// TestParseFormats: each host's push decodes to the same Push.
func TestParseFormats(t *testing.T) {
	for _, tc := range []struct {
		f     Format
		event string
		body  string
	}{
		{FormatGitHub, "push", `{"ref":"refs/heads/main","before":"` + strings.Repeat("0", 40) + `","after":"` + sha1 + `",
			"repository":{"clone_url":"https://h/a/b.git","ssh_url":"git@h:a/b.git","default_branch":"main"},
			"head_commit":{"id":"` + sha1 + `","message":"m","author":{"name":"Ada","email":"a@x"}},
			"commits":[{"id":"` + sha1 + `","added":["x/1"],"modified":["x/2"],"removed":["x/1"]}],"size":1}`},
		{FormatGitea, "push", `{"ref":"refs/heads/main","before":"","after":"` + sha1 + `","total_commits":1,
			"repository":{"clone_url":"https://h/a/b.git","ssh_url":"git@h:a/b.git","default_branch":"main"},
			"commits":[{"id":"` + sha1 + `","message":"m","author":{"name":"Ada","email":"a@x"},"added":["x/1"],"modified":["x/2"]}]}`},
		{FormatGitLab, "Push Hook", `{"object_kind":"push","ref":"refs/heads/main","before":"` + strings.Repeat("0", 40) + `","after":"` + sha1 + `",
			"checkout_sha":"` + sha1 + `","total_commits_count":1,
			"project":{"git_http_url":"https://h/a/b.git","git_ssh_url":"git@h:a/b.git","default_branch":"main"},
			"commits":[{"id":"` + sha1 + `","message":"m","author":{"name":"Ada","email":"a@x"},"added":["x/1"],"modified":["x/2"]}]}`},
		{FormatGeneric, "", `{"repo":"https://h/a/b.git","ref":"main","sha":"` + strings.ToUpper(sha1) + `","defaultBranch":"main",
			"author":"Ada <a@x>","message":"m","files":["x/2","x/1"]}`},
	} {
		p, err := Parse(tc.f, tc.event, "", []byte(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.f, err)
			continue
		}
		if p.Repos[0] != "https://h/a/b.git" || p.Ref != "refs/heads/main" || p.SHA != sha1 || p.Deleted || p.Before != "" ||
			p.Author != "Ada <a@x>" || p.Message != "m" || p.DefaultBranch != "main" || !p.FilesKnown ||
			strings.Join(p.Files, ",") != "x/1,x/2" || p.Branch() != "main" || p.IsTag() {
			t.Errorf("%s: got %+v", tc.f, p)
		}
		if !strings.HasPrefix(p.Delivery, "git:"+string(tc.f)+":") {
			t.Errorf("%s: delivery %q", tc.f, p.Delivery)
		}
		again, _ := Parse(tc.f, tc.event, "", []byte(tc.body))
		if again.Delivery != p.Delivery {
			t.Errorf("%s: delivery not stable: %s then %s", tc.f, p.Delivery, again.Delivery)
		}
	}
}

// TestParseEdges: deletions, truncated pushes, non-push events and bad
// fields.
func TestParseEdges(t *testing.T) {
	del, err := Parse(FormatGitHub, "push", "d", []byte(`{"ref":"refs/heads/x","after":"`+strings.Repeat("0", 40)+`","deleted":true,"repository":{"clone_url":"u"}}`))
	if err != nil || !del.Deleted || del.SHA != "" || del.Delivery != "git:github:d" {
		t.Errorf("deletion: %+v, %v", del, err)
	}
	trunc, err := Parse(FormatGitHub, "push", "", []byte(`{"ref":"refs/heads/x","after":"`+sha1+`","size":30,"repository":{"clone_url":"u"},"commits":[{"id":"`+sha1+`","added":["a"]}]}`))
	if err != nil || trunc.FilesKnown {
		t.Errorf("a push of 30 commits listing 1: FilesKnown = %v (%v), want false", trunc.FilesKnown, err)
	}
	tagObj := strings.Repeat("9", 40)
	tag, err := Parse(FormatGitHub, "push", "", []byte(`{"ref":"refs/tags/v1","after":"`+tagObj+`","repository":{"clone_url":"u"},"head_commit":{"id":"`+sha1+`"}}`))
	if err != nil || tag.SHA != sha1 || !tag.IsTag() {
		t.Errorf("annotated tag push: %+v, %v; want the head commit %s", tag, err, sha1)
	}
	if _, err := Parse(FormatGitHub, "issues", "", []byte(`{}`)); !IsIgnored(err) {
		t.Errorf("issues event: %v, want ignored", err)
	}
	if _, err := Parse(FormatGitLab, "", "", []byte(`{"object_kind":"merge_request"}`)); !IsIgnored(err) {
		t.Errorf("gitlab merge request: %v, want ignored", err)
	}
	for name, body := range map[string]string{
		"no repository": `{"ref":"refs/heads/x","after":"` + sha1 + `"}`,
		"short ref":     `{"ref":"main","after":"` + sha1 + `","repository":{"clone_url":"u"}}`,
		"bad sha":       `{"ref":"refs/heads/x","after":"xyz","repository":{"clone_url":"u"}}`,
		"not json":      `{`,
	} {
		if _, err := Parse(FormatGitHub, "push", "", []byte(body)); err == nil || IsIgnored(err) {
			t.Errorf("%s: err = %v, want an error", name, err)
		}
	}
}

// TestHandlerAuth: the handler answers 401 for a wrong or missing
// signature and for a repository without a secret, and calls Accept only
// for an authentic push.
func TestHandlerAuth(t *testing.T) {
	accepted := 0
	h := Handler(Config{
		Secret: func(_ context.Context, repos []string) (string, string, bool, error) {
			return repos[0], "s3cret", repos[0] == "https://h/a/b.git", nil
		},
		Accept: func(context.Context, Push) (Verdict, error) { accepted++; return Verdict{Message: "ok"}, nil },
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := []byte(`{"repo":"https://h/a/b.git","ref":"refs/heads/main","sha":"` + sha1 + `"}`)
	post := func(format string, b []byte, hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/git/"+format, bytes.NewReader(b))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := "sha256=" + hex.EncodeToString(Sign("s3cret", body))
	bad := "sha256=" + hex.EncodeToString(Sign("other", body))
	for _, tc := range []struct {
		name   string
		format string
		body   []byte
		hdr    map[string]string
		want   int
	}{
		{"signed", "generic", body, map[string]string{"X-Refit-Signature-256": good}, 202},
		{"wrong key", "generic", body, map[string]string{"X-Refit-Signature-256": bad}, 401},
		{"unsigned", "generic", body, nil, 401},
		{"sha1", "generic", body, map[string]string{"X-Hub-Signature-256": "sha1=" + good[7:]}, 401},
		{"no secret", "generic", []byte(strings.Replace(string(body), "a/b", "a/c", 1)), map[string]string{"X-Refit-Signature-256": good}, 401},
		{"unknown format", "bitbucket", body, nil, 404},
	} {
		before := accepted
		if got := post(tc.format, tc.body, tc.hdr); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
		if wantCalls := map[bool]int{true: 1, false: 0}[tc.want == 202]; accepted-before != wantCalls {
			t.Errorf("%s: Accept called %d times, want %d", tc.name, accepted-before, wantCalls)
		}
	}
}

// FuzzGitPush: no payload panics any parser, and whatever parses has a
// repository, a full ref, a full SHA unless deleted, bounded fields and
// a delivery id; whatever does not parse keeps only its repositories.
func FuzzGitPush(f *testing.F) {
	f.Add("github", "push", []byte(`{"ref":"refs/heads/main","after":"`+sha1+`","repository":{"clone_url":"u"},"commits":[{"added":["a"]}]}`))
	f.Add("gitlab", "Push Hook", []byte(`{"object_kind":"push","ref":"refs/tags/v1","after":"`+sha1+`","project":{"git_http_url":"u"}}`))
	f.Add("gitea", "push", []byte(`{"ref":"refs/heads/x","after":"`+strings.Repeat("0", 40)+`","repository":{"clone_url":"u"}}`))
	f.Add("generic", "", []byte(`{"repo":"u","ref":"main","sha":"`+sha1+`","files":["a","b"]}`))
	f.Fuzz(func(t *testing.T, format, event string, body []byte) {
		p, err := Parse(Format(format), event, "", body)
		if err != nil {
			// A refusal keeps at most the (bounded) repositories named.
			if p.Ref != "" || p.SHA != "" || p.Delivery != "" || len(p.Repos) > 3 || slices.ContainsFunc(p.Repos, func(r string) bool { return len(r) > 2048 }) {
				t.Fatalf("refused payload kept %+v", p)
			}
			return
		}
		if len(p.Repos) == 0 || !strings.HasPrefix(p.Ref, "refs/") || p.Delivery == "" {
			t.Fatalf("parsed %+v", p)
		}
		if !p.Deleted && !isSHA(p.SHA) {
			t.Fatalf("sha %q", p.SHA)
		}
		if len(p.Message) > 4096 || len(p.Author) > 512 || len(p.Files) > MaxFiles {
			t.Fatalf("unbounded fields: %d %d %d", len(p.Message), len(p.Author), len(p.Files))
		}
	})
}

// TestHandlerRedactsURLs: a payload URL carrying credentials is answered
// (401) without them.
func TestHandlerRedactsURLs(t *testing.T) {
	h := Handler(Config{
		Secret: func(context.Context, []string) (string, string, bool, error) { return "", "", false, nil },
		Accept: func(context.Context, Push) (Verdict, error) { return Verdict{}, nil },
	})
	body := `{"repo":"https://robot:tok3n-value@h/a/b.git","ref":"refs/heads/main","sha":"` + sha1 + `"}`
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hooks/git/generic", strings.NewReader(body)))
	if rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), "tok3n-value") {
		t.Errorf("got %d %s, want 401 without the token", rec.Code, rec.Body)
	}
}

// TestSecretVouchesForItsRepoOnly: a payload naming two repositories,
// signed with the secret of one, reaches Accept with that one only — a
// secret never lets its holder push for another repository.
func TestSecretVouchesForItsRepoOnly(t *testing.T) {
	var got []string
	h := Handler(Config{
		Secret: func(_ context.Context, repos []string) (string, string, bool, error) {
			for _, r := range repos {
				if r == "https://h/mine.git" {
					return r, "mine", true, nil
				}
			}
			return "", "", false, nil
		},
		Accept: func(_ context.Context, p Push) (Verdict, error) { got = p.Repos; return Verdict{}, nil },
	})
	body := []byte(`{"ref":"refs/heads/main","after":"` + sha1 + `","repository":{"clone_url":"https://h/victim.git","ssh_url":"https://h/mine.git"}}`)
	req := httptest.NewRequest(http.MethodPost, "/hooks/git/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(Sign("mine", body)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted || len(got) != 1 || got[0] != "https://h/mine.git" {
		t.Errorf("got %d, Accept saw %v; want 202 with only https://h/mine.git", rec.Code, got)
	}
}

// TestHandlerRecords: Record hears each push delivery's outcome before
// the answer — the 202 with its verdict and runs (authenticated, the
// verified repository only), a 401 and a 400 naming repositories
// (unauthenticated) — and nothing for a body that cannot be read.
func TestHandlerRecords(t *testing.T) {
	var got []Delivery
	h := Handler(Config{
		Secret: func(_ context.Context, repos []string) (string, string, bool, error) {
			return repos[0], "s3cret", true, nil
		},
		Accept: func(context.Context, Push) (Verdict, error) {
			return Verdict{Runs: []string{"r-7"}, Message: "1 run(s) queued or joined for refs/heads/main"}, nil
		},
		Record: func(_ context.Context, d Delivery) { got = append(got, d) },
	})
	post := func(body, sig string) int {
		req := httptest.NewRequest(http.MethodPost, "/hooks/git/generic", strings.NewReader(body))
		req.Header.Set("X-Refit-Delivery", "d1")
		req.Header.Set("X-Refit-Signature-256", "sha256="+sig)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	good := `{"repo":"https://h/a.git","ref":"refs/heads/main","sha":"` + sha1 + `"}`
	codes := []int{
		post(good, hex.EncodeToString(Sign("s3cret", []byte(good)))),
		post(good, hex.EncodeToString(Sign("wrong", []byte(good)))),
		post(`{"repo":"https://h/a.git","ref":"main","sha":"x"}`, ""),
		post(`{not json`, ""),
	}
	if !slices.Equal(codes, []int{202, 401, 400, 400}) {
		t.Fatalf("codes %v, want 202 401 400 400", codes)
	}
	if len(got) != 3 {
		t.Fatalf("Record heard %d deliveries, want 3: %+v", len(got), got)
	}
	if d := got[0]; !d.Authenticated || d.Status != 202 || d.Format != FormatGeneric || d.Delivery != "git:generic:d1" || d.SHA != sha1 ||
		!slices.Equal(d.Runs, []string{"r-7"}) || !slices.Equal(d.Repos, []string{"https://h/a.git"}) {
		t.Errorf("accepted: %+v", d)
	}
	if d := got[1]; d.Authenticated || d.Status != 401 || !strings.HasPrefix(d.Message, "refused") || len(d.Runs) != 0 {
		t.Errorf("bad signature: %+v", d)
	}
	if d := got[2]; d.Authenticated || d.Status != 400 || !strings.Contains(d.Message, "unreadable push") || d.Delivery != "git:generic:d1" || !slices.Equal(d.Repos, []string{"https://h/a.git"}) {
		t.Errorf("unreadable: %+v", d)
	}
}

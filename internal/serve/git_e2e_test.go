package serve_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/githook"
	"github.com/refit-dev/refit/internal/runner"
	"github.com/refit-dev/refit/internal/serve"
)

// gitFormat builds and signs one git host's push notification the way the
// host does.
type gitFormat struct {
	name string
	body func(repo, ref, sha string, files []string) string
	sign func(req *http.Request, secret string, body []byte, delivery string)
}

func hexSig(secret string, body []byte) string { return hex.EncodeToString(githook.Sign(secret, body)) }

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var gitFormats = []gitFormat{
	{"github", func(repo, ref, sha string, files []string) string {
		return jsonOf(map[string]any{"ref": ref, "before": strings.Repeat("1", 40), "after": sha, "deleted": false,
			"repository":  map[string]any{"clone_url": repo, "ssh_url": "git@example.invalid:x/y.git", "default_branch": "main"},
			"head_commit": map[string]any{"id": sha, "message": "change things\n\nbody", "author": map[string]any{"name": "Ada", "email": "ada@example.com"}},
			"commits":     []any{map[string]any{"id": sha, "modified": files, "author": map[string]any{"name": "Ada", "email": "ada@example.com"}}}})
	}, func(req *http.Request, secret string, body []byte, delivery string) {
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", delivery)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hexSig(secret, body))
	}},
	{"gitlab", func(repo, ref, sha string, files []string) string {
		return jsonOf(map[string]any{"object_kind": "push", "ref": ref, "before": strings.Repeat("1", 40), "after": sha, "checkout_sha": sha,
			"total_commits_count": 1,
			"project":             map[string]any{"git_http_url": repo, "git_ssh_url": "git@example.invalid:x/y.git", "default_branch": "main"},
			"commits":             []any{map[string]any{"id": sha, "message": "change things\n\nbody", "author": map[string]any{"name": "Ada", "email": "ada@example.com"}, "modified": files}}})
	}, func(req *http.Request, secret string, body []byte, delivery string) {
		req.Header.Set("X-Gitlab-Event", "Push Hook")
		req.Header.Set("X-Gitlab-Event-UUID", delivery)
		req.Header.Set("X-Gitlab-Token", secret)
	}},
	{"gitea", func(repo, ref, sha string, files []string) string {
		return jsonOf(map[string]any{"ref": ref, "before": strings.Repeat("1", 40), "after": sha, "total_commits": 1,
			"repository":  map[string]any{"clone_url": repo, "default_branch": "main"},
			"head_commit": map[string]any{"id": sha, "message": "change things\n\nbody", "author": map[string]any{"name": "Ada", "email": "ada@example.com"}},
			"commits":     []any{map[string]any{"id": sha, "modified": files, "author": map[string]any{"name": "Ada", "email": "ada@example.com"}}}})
	}, func(req *http.Request, secret string, body []byte, delivery string) {
		req.Header.Set("X-Gitea-Event", "push")
		req.Header.Set("X-Gitea-Delivery", delivery)
		req.Header.Set("X-Gitea-Signature", hexSig(secret, body))
	}},
	{"generic", func(repo, ref, sha string, files []string) string {
		return jsonOf(map[string]any{"repo": repo, "ref": ref, "sha": sha, "defaultBranch": "main", "author": "Ada <ada@example.com>",
			"message": "change things\n\nbody", "files": files})
	}, func(req *http.Request, secret string, body []byte, delivery string) {
		req.Header.Set("X-Refit-Delivery", delivery)
		req.Header.Set("X-Refit-Signature-256", "sha256="+hexSig(secret, body))
	}},
}

// postGitHook posts a git notification and returns the status and body.
func postGitHook(t *testing.T, apiURL, format string, body []byte, sign func(*http.Request)) (int, githook.Verdict, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, apiURL+"/hooks/git/"+format, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	sign(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s git webhook: %v", format, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v githook.Verdict
	json.Unmarshal(b, &v)
	return resp.StatusCode, v, strings.TrimSpace(string(b))
}

// gitRepo makes a repository with a Dockerfile on main, served on
// loopback, and returns its directory and main's commit.
func gitRepo(t *testing.T, root, name, dockerfile string) (dir, sha string) {
	t.Helper()
	dir = filepath.Join(root, name)
	writeFiles(t, dir, map[string]string{"svc/Dockerfile": dockerfile, "svc/app.txt": "v1\n", "docs/readme.md": "docs\n"})
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "first")
	return dir, strings.TrimSpace(git(t, dir, "rev-parse", "HEAD"))
}

// TestGitWebhooks: each git host's push, signed with the host's own
// scheme against the real server, queues one run of the task on that
// repository at the pushed commit, with the commit's author and message
// as its cause; a replayed delivery queues nothing more; a bad signature
// is 401 and queues nothing; a branch the task does not follow, a tag,
// and a repository no task uses are 202 saying so; a push that touches
// nothing under a task's paths filter skips that task; a body over 1 MiB
// is 413; GitHub's ping is answered.
func TestGitWebhooks(t *testing.T) {
	// No BuildKit is needed: runs wait out an hour's debounce.
	r := startRefitWith(t, serve.Config{PollInterval: time.Hour, Debounce: time.Hour,
		BuildKit: "unix://" + filepath.Join(t.TempDir(), "none.sock")})
	ctx := context.Background()
	root := t.TempDir()
	server := serveGit(t, root)
	const df = "FROM scratch\nCOPY app.txt /\n"
	secret := "0123456789abcdef-webhook-secret"
	shas := map[string]string{}
	urls := map[string]string{}
	for _, f := range gitFormats {
		_, sha := gitRepo(t, root, f.name, df)
		urls[f.name], shas[f.name] = server+"/"+f.name, sha
		if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "on-" + f.name, Source: api.TaskSource{Git: urls[f.name], Ref: "main"},
			Context: "svc"}); err != nil {
			t.Fatal(err)
		}
		// The secret is set under another form of the same URL.
		if _, err := r.c.PutGitSecret(ctx, urls[f.name]+".git/", secret); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "api-only", Source: api.TaskSource{Git: urls["github"], Ref: "main"},
		Context: "svc", Triggers: &api.Triggers{Commit: api.CommitTrigger{Enabled: true, Branches: []string{"main"}, Paths: []string{"svc/**"}}, Manual: true}}); err != nil {
		t.Fatal(err)
	}

	for i, f := range gitFormats {
		url, sha := urls[f.name], shas[f.name]
		body := []byte(f.body(url, "refs/heads/main", sha, []string{"svc/app.txt"}))
		delivery := "delivery-" + f.name
		status, v, raw := postGitHook(t, r.APIURL, f.name, body, func(req *http.Request) { f.sign(req, secret, body, delivery) })
		want := 1
		if f.name == "github" {
			want = 2 // on-github and api-only (svc/app.txt is under svc/**)
		}
		if status != http.StatusAccepted || len(v.Runs) != want {
			t.Fatalf("%s push: %d %s, want 202 with %d run(s)", f.name, status, raw, want)
		}
		run, err := r.c.GetRun(ctx, v.Runs[0])
		if err != nil {
			t.Fatal(err)
		}
		c := run.Cause
		if c.Kind != "commit" || c.SHA != sha || c.Ref != "refs/heads/main" || c.Author != "Ada <ada@example.com>" ||
			!strings.HasPrefix(c.Message, "change things") || c.Source != "webhook" || !strings.HasPrefix(run.Task, "on-") && run.Task != "api-only" {
			t.Errorf("%s push: run %s of %s has cause %+v, want commit %s of refs/heads/main by Ada", f.name, run.ID, run.Task, c, sha)
		}
		if run.State != api.StateQueued {
			t.Errorf("%s push: run state %s, want queued (debounced)", f.name, run.State)
		}
		// refit task triggers shows the delivery as the format's last.
		if d := lastDelivery(t, r.c, "on-"+f.name, f.name); d.Status != http.StatusAccepted || d.Ref != "refs/heads/main" ||
			d.SHA != sha || !strings.HasSuffix(d.Delivery, delivery) || !slices.Equal(d.Runs, v.Runs) ||
			!strings.Contains(d.Message, "queued or joined for refs/heads/main") || d.At.IsZero() {
			t.Errorf("%s push: last delivery %+v, want 202 at %s with runs %v", f.name, d, sha, v.Runs)
		}

		// The same delivery again: 202, a replay, no new run.
		n := len(allRuns(t, r.c))
		status, v, raw = postGitHook(t, r.APIURL, f.name, body, func(req *http.Request) { f.sign(req, secret, body, delivery) })
		if status != http.StatusAccepted || !v.Replay || len(v.Runs) != 0 {
			t.Errorf("%s replay: %d %s, want 202 replay without runs", f.name, status, raw)
		}
		// A bad signature (token): 401, nothing.
		status, _, raw = postGitHook(t, r.APIURL, f.name, body, func(req *http.Request) { f.sign(req, "wrong-secret", body, delivery+"-bad") })
		if status != http.StatusUnauthorized {
			t.Errorf("%s with a bad signature: %d %s, want 401", f.name, status, raw)
		}
		if d := lastDelivery(t, r.c, "on-"+f.name, f.name); d.Status != http.StatusUnauthorized || d.SHA != sha ||
			!strings.HasSuffix(d.Delivery, delivery+"-bad") || len(d.Runs) != 0 || !strings.Contains(d.Message, "refused: the signature does not verify") {
			t.Errorf("%s with a bad signature: last delivery %+v, want the 401 refusal", f.name, d)
		}
		// A branch the task does not follow: 202 saying so, no run.
		other := []byte(f.body(url, "refs/heads/feature", sha, []string{"svc/app.txt"}))
		status, v, raw = postGitHook(t, r.APIURL, f.name, other, func(req *http.Request) { f.sign(req, secret, other, delivery+"-feature") })
		if status != http.StatusAccepted || len(v.Runs) != 0 || !strings.Contains(v.Message, "follows branch main, not feature") {
			t.Errorf("%s push to feature: %d %s, want 202 saying the task follows main", f.name, status, raw)
		}
		// A tag push builds only when asked.
		tag := []byte(f.body(url, "refs/tags/v1", sha, nil))
		status, v, raw = postGitHook(t, r.APIURL, f.name, tag, func(req *http.Request) { f.sign(req, secret, tag, delivery+"-tag") })
		if status != http.StatusAccepted || len(v.Runs) != 0 || !strings.Contains(v.Message, "is a tag") {
			t.Errorf("%s tag push: %d %s, want 202 saying tags are not built", f.name, status, raw)
		}
		if got := len(allRuns(t, r.c)); got != n {
			t.Errorf("after %s's replay, bad signature, other branch and tag: %d runs, want %d", f.name, got, n)
		}
		// One row per source, replaced: the tag push is the last.
		tr, err := r.c.Triggers(ctx, "on-"+f.name)
		if err != nil {
			t.Fatal(err)
		}
		if ds := tr.Commit.Deliveries; len(ds) != 1 || ds[0].Source != f.name || ds[0].Ref != "refs/tags/v1" ||
			ds[0].Status != http.StatusAccepted || !strings.Contains(ds[0].Message, "on-"+f.name+": refs/tags/v1 is a tag") {
			t.Errorf("%s: deliveries after the tag push = %+v, want one %s row saying the tag is not built", f.name, ds, f.name)
		}
		_ = i
	}
	// refit task triggers: a secret is set for the repository (under
	// another form of its URL).
	if tr, err := r.c.Triggers(ctx, "api-only"); err != nil || !tr.Commit.SecretSet || !slices.Equal(tr.Commit.Filters.Branches, []string{"main"}) {
		t.Errorf("api-only's commit section = %+v (%v), want its secret set and branches [main]", tr.Commit, err)
	}

	// A push touching only docs: on-github's waiting run absorbs it,
	// api-only (paths: svc/**) skips it and says why.
	gh := gitFormats[0]
	docs := []byte(gh.body(urls["github"], "refs/heads/main", shas["github"], []string{"docs/readme.md"}))
	status, v, raw := postGitHook(t, r.APIURL, "github", docs, func(req *http.Request) { gh.sign(req, secret, docs, "docs-only") })
	if status != http.StatusAccepted || len(v.Runs) != 1 || !strings.Contains(v.Message, "joined") {
		t.Errorf("docs-only push: %d %s, want 202 with on-github's waiting run joined", status, raw)
	}
	if n := countOf(allRuns(t, r.c), "api-only"); n != 1 {
		t.Errorf("api-only has %d runs after a docs-only push, want 1 (the paths filter skips it)", n)
	}
	if d := lastDelivery(t, r.c, "api-only", "github"); d.Status != http.StatusAccepted || !slices.Equal(d.Runs, v.Runs) ||
		!strings.Contains(d.Message, "joined") || !strings.Contains(d.Message, "api-only: no changed file is under triggers.commit.paths [svc/**]") {
		t.Errorf("docs-only push: api-only's last github delivery %+v, want 202 with the run joined and api-only's paths skip", d)
	}

	// An unreadable push naming a repository tasks build: 400, shown.
	bad := []byte(`{"repo":"` + urls["generic"] + `","ref":"refs/heads/main","sha":"not-a-commit"}`)
	if status, _, raw := postGitHook(t, r.APIURL, "generic", bad, func(req *http.Request) { req.Header.Set("X-Refit-Delivery", "unreadable") }); status != http.StatusBadRequest {
		t.Errorf("push with a bad sha: %d %s, want 400", status, raw)
	}
	if d := lastDelivery(t, r.c, "on-generic", "generic"); d.Status != http.StatusBadRequest || !strings.Contains(d.Message, "unreadable push") {
		t.Errorf("push with a bad sha: last generic delivery %+v, want the 400", d)
	}

	// A repository with a secret and no task: 202 saying so.
	lonely := "https://git.example.com/acme/lonely.git"
	if _, err := r.c.PutGitSecret(ctx, lonely, secret); err != nil {
		t.Fatal(err)
	}
	body := []byte(gh.body(lonely, "refs/heads/main", shas["github"], nil))
	status, v, raw = postGitHook(t, r.APIURL, "github", body, func(req *http.Request) { gh.sign(req, secret, body, "lonely") })
	if status != http.StatusAccepted || !strings.Contains(v.Message, "no task builds repository") {
		t.Errorf("push of an unused repository: %d %s, want 202 saying no task builds it", status, raw)
	}
	// A repository without a secret: 401.
	body = []byte(gh.body("https://git.example.com/acme/unknown", "refs/heads/main", shas["github"], nil))
	if status, _, raw := postGitHook(t, r.APIURL, "github", body, func(req *http.Request) { gh.sign(req, secret, body, "unknown") }); status != http.StatusUnauthorized {
		t.Errorf("push of a repository without a secret: %d %s, want 401", status, raw)
	}
	// GitHub's ping.
	ping := []byte(`{"zen":"Keep it logically awesome.","repository":{"clone_url":"` + urls["github"] + `"}}`)
	if status, v, raw := postGitHook(t, r.APIURL, "github", ping, func(req *http.Request) {
		req.Header.Set("X-GitHub-Event", "ping")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hexSig(secret, ping))
	}); status != http.StatusOK || v.Message != "pong" {
		t.Errorf("ping: %d %s, want 200 pong", status, raw)
	}
	// Over 1 MiB: 413.
	big := bytes.Repeat([]byte(" "), 1<<20+1)
	if status, _, raw := postGitHook(t, r.APIURL, "generic", big, func(*http.Request) {}); status != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MiB + 1 body: %d %s, want 413", status, raw)
	}
	// Every run is still one per task: on-* and api-only.
	runs := allRuns(t, r.c)
	if len(runs) != len(gitFormats)+1 {
		t.Errorf("%d runs in all, want %d", len(runs), len(gitFormats)+1)
	}
}

// TestGitPollBuildsAtCommit: polling a repository served on loopback
// records its heads without building; a pushed commit is found by the
// next listing and built at exactly that commit (the image's revision
// annotation is its SHA); a commit touching nothing under the task's
// paths filter builds nothing; and a webhook's commit is built at its own
// SHA even when the branch has moved on since.
func TestGitPollBuildsAtCommit(t *testing.T) {
	r := startRefitWith(t, serve.Config{GitPollInterval: time.Second, Debounce: -1})
	ctx := context.Background()
	baseRef := r.RegistryAddr + "/base/busybox:1"
	pushBase(t, baseRef, "")
	root := t.TempDir()
	dir, first := gitRepo(t, root, "polled", "FROM "+baseRef+"\nCOPY app.txt /\n")
	url := serveGit(t, root) + "/polled"
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "polled", Source: api.TaskSource{Git: url, Ref: "main"}, Context: "svc",
		Triggers: &api.Triggers{Commit: api.CommitTrigger{Enabled: true, Branches: []string{"main"}, Paths: []string{"svc/**"}}, Manual: true}}); err != nil {
		t.Fatal(err)
	}
	// First sight: heads recorded, nothing built.
	time.Sleep(3 * time.Second)
	if runs := allRuns(t, r.c); len(runs) != 0 {
		t.Fatalf("%d runs after polling saw the repository first, want none", len(runs))
	}

	commit := func(file, body, msg string) string {
		writeFiles(t, dir, map[string]string{file: body})
		git(t, dir, "add", ".")
		git(t, dir, "commit", "-q", "-m", msg)
		return strings.TrimSpace(git(t, dir, "rev-parse", "HEAD"))
	}
	// A docs-only commit: skipped by the paths filter.
	docs := commit("docs/readme.md", "more docs\n", "docs")
	time.Sleep(4 * time.Second)
	if runs := allRuns(t, r.c); len(runs) != 0 {
		t.Fatalf("%d runs after a docs-only commit, want none (paths: svc/**)", len(runs))
	}
	// refit task triggers shows the skip as polling's last delivery.
	if d := lastDelivery(t, r.c, "polled", "poll"); d.SHA != docs || d.Ref != "refs/heads/main" || d.Status != 0 || len(d.Runs) != 0 ||
		!strings.Contains(d.Message, "polled: no changed file is under triggers.commit.paths [svc/**]") {
		t.Errorf("docs-only commit: last poll delivery %+v, want the paths skip of %s", d, docs)
	}
	// A commit under svc/: built at that commit.
	second := commit("svc/app.txt", "v2\n", "change the app")
	run := waitForRun(t, r.c, "polled", 1)
	run = waitRun(t, r.c, run.ID)
	if run.State != api.StateSucceeded {
		t.Fatalf("polled run: %s at %s: %s", run.State, run.Step, run.Error)
	}
	if run.Cause.Kind != "commit" || run.Cause.SHA != second || run.Cause.Source != "poll" || run.Commit != second {
		t.Errorf("polled run: cause %+v, commit %s; want a poll commit cause at %s", run.Cause, run.Commit, second)
	}
	if _, idx := builtImage(t, run.Image); idx.Annotations[runner.AnnotationRevision] != second {
		t.Errorf("revision annotation = %q, want %s", idx.Annotations[runner.AnnotationRevision], second)
	}
	// refit task triggers shows the filters, the webhook paths, that no
	// secret is set, and the head polling saw.
	tr, err := r.c.Triggers(ctx, "polled")
	if err != nil {
		t.Fatal(err)
	}
	if c := tr.Commit; !c.Enabled || c.Repo != url || c.SecretSet || len(c.Webhooks) != 4 || c.Heads["refs/heads/main"] != second ||
		!slices.Equal(c.Filters.Paths, []string{"svc/**"}) {
		t.Errorf("triggers' commit section = %+v, want the filters, 4 webhook paths, no secret, main at %s", c, second)
	}
	if d := lastDelivery(t, r.c, "polled", "poll"); d.SHA != second || !slices.Equal(d.Runs, []string{run.ID}) {
		t.Errorf("polled commit: last poll delivery %+v, want %s with run %s", d, second, run.ID)
	}

	// A webhook names the first commit while main has moved on: the run
	// builds the commit the webhook named.
	secret := "another-webhook-secret-0123456789"
	if _, err := r.c.PutGitSecret(ctx, url, secret); err != nil {
		t.Fatal(err)
	}
	gen := gitFormats[3]
	body := []byte(gen.body(url, "refs/heads/main", first, []string{"svc/app.txt"}))
	status, v, raw := postGitHook(t, r.APIURL, "generic", body, func(req *http.Request) { gen.sign(req, secret, body, "old-commit") })
	if status != http.StatusAccepted || len(v.Runs) != 1 {
		t.Fatalf("webhook for the older commit: %d %s, want 202 with a run", status, raw)
	}
	old := waitRun(t, r.c, v.Runs[0])
	if old.State != api.StateSucceeded || old.Commit != first {
		t.Fatalf("webhook run: %s, commit %s, want succeeded at %s (%s)", old.State, old.Commit, first, old.Error)
	}
	if _, idx := builtImage(t, old.Image); idx.Annotations[runner.AnnotationRevision] != first {
		t.Errorf("webhook run's revision annotation = %q, want %s", idx.Annotations[runner.AnnotationRevision], first)
	}
	if n := countOf(allRuns(t, r.c), "polled"); n != 2 {
		t.Errorf("%d runs of polled, want 2 (the polled commit and the webhook's)", n)
	}
}

// lastDelivery returns the last delivery from source that `refit task
// triggers` shows for task, failing the test when there is none.
func lastDelivery(t *testing.T, c *client.Client, task, source string) api.GitDelivery {
	t.Helper()
	tr, err := c.Triggers(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range tr.Commit.Deliveries {
		if d.Source == source {
			return d
		}
	}
	t.Errorf("triggers of %s show no %s delivery (deliveries %+v)", task, source, tr.Commit.Deliveries)
	return api.GitDelivery{}
}

// waitForRun waits until task has n runs and returns the newest.
func waitForRun(t *testing.T, c *client.Client, task string, n int) api.Run {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		runs := allRuns(t, c)
		if countOf(runs, task) >= n {
			return lastOf(runs, task)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("task %s has fewer than %d runs after 30 s", task, n)
	return api.Run{}
}

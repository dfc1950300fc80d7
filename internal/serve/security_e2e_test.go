package serve_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bkclient "github.com/moby/buildkit/client"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
	"github.com/refit-dev/refit/internal/serve"
)

// environSecretVar carries a secret in the environment the test process
// starts with, which is what /proc/self/environ shows.
const environSecretVar = "REFIT_TEST_ENVIRON_SECRET"

// syncBuffer is a bytes.Buffer safe for concurrent writers (the server
// logs from many goroutines).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func randomSecret(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// TestSourceCannotReachServerFiles plants secrets outside a source — a
// file, the server's admin token and secret key, the server process's
// environment — and links to them every way a repository can, from a
// dir source and from a git repository. Links that would make refit read
// a server file are refused at task create with a 400 naming the path;
// a context holding such links builds, and BuildKit gets the links as
// links. No secret reaches a task-create error, a run record, a run log,
// the event outbox, the server log or any blob of a pushed image.
func TestSourceCannotReachServerFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs buildkitd and runc (make deps)")
	}
	envSecret := os.Getenv(environSecretVar)
	if envSecret == "" {
		// os.Setenv does not change /proc/self/environ: run the test in a
		// child process that starts with the secret in its environment.
		cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), environSecretVar+"="+randomSecret(t, "ENVSECRET"))
		out, err := cmd.CombinedOutput()
		t.Logf("child test process:\n%s", out)
		if err != nil {
			t.Fatalf("child test process: %v", err)
		}
		if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
			t.Fatal("the child test process did not run the test")
		}
		return
	}

	data := t.TempDir()
	var logs syncBuffer
	r := startRefitWith(t, serve.Config{DataDir: data,
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := context.Background()
	baseRef := r.RegistryAddr + "/base/busybox:1"
	pushBase(t, baseRef, "")

	fileSecret := randomSecret(t, "FILESECRET")
	outside := filepath.Join(t.TempDir(), "outside")
	writeFiles(t, outside, map[string]string{
		"secret.txt": fileSecret + "\n",
		// A Dockerfile on the server that would put the secret in the image.
		"Dockerfile": "FROM " + baseRef + "\nCOPY . /leak/\nLABEL leak=" + fileSecret + "\n",
	})
	token, err := os.ReadFile(filepath.Join(data, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(data, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"the planted file":         fileSecret,
		"the admin token":          strings.TrimSpace(string(token)),
		"the secret key":           strings.TrimSpace(string(key)),
		"the server's environment": envSecret,
	}
	// up climbs from any depth to the filesystem root, then goes down.
	up := func(abs string) string { return strings.Repeat("../", 40) + strings.TrimPrefix(abs, "/") }
	files := map[string]string{
		"ign/Dockerfile": "FROM " + baseRef + "\nCOPY . /app/\n",
		"cp/Dockerfile":  "FROM " + baseRef + "\nCOPY . /app/\nRUN cat /app/link /app/up /app/tok /app/env /app/dir/secret.txt || true\n",
		"cpl/Dockerfile": "FROM " + baseRef + "\nCOPY link /leak\n",
	}
	links := map[string]string{
		"tok/Dockerfile":    filepath.Join(data, "admin-token"),
		"key/Dockerfile":    up(filepath.Join(data, "secret.key")),
		"env/Dockerfile":    "/proc/self/environ",
		"sec/Dockerfile":    up(filepath.Join(outside, "secret.txt")),
		"ctx":               outside,
		"n1":                "n2",
		"n2":                up(outside),
		"df":                outside,
		"ign/.dockerignore": filepath.Join(outside, "secret.txt"),
		"cp/link":           filepath.Join(outside, "secret.txt"),
		"cp/up":             up(filepath.Join(outside, "secret.txt")),
		"cp/tok":            filepath.Join(data, "admin-token"),
		"cp/env":            "/proc/self/environ",
		"cp/dir":            outside,
		"cpl/link":          filepath.Join(outside, "secret.txt"),
	}
	refused := []struct {
		name          string
		context, file string
		want          string
	}{
		{"tok", "tok", "", `dockerfile "tok/Dockerfile" leaves the source (symlink "tok/Dockerfile")`},
		{"key", "key", "", `dockerfile "key/Dockerfile" leaves the source (symlink "key/Dockerfile")`},
		{"env", "env", "", `dockerfile "env/Dockerfile" leaves the source`},
		{"sec", "sec", "", `dockerfile "sec/Dockerfile" leaves the source`},
		{"ctx", "ctx", "", `context "ctx" leaves the source (symlink "ctx")`},
		{"nested", "n1", "", `context "n1" leaves the source (symlink "n2")`},
		{"dfdir", ".", "df/Dockerfile", `dockerfile "df/Dockerfile" leaves the source (symlink "df")`},
		{"ignore", "ign", "", `dockerignore "ign/.dockerignore" leaves the source`},
	}
	built := []struct{ name, context string }{{"cp", "cp"}, {"cpl", "cpl"}}

	repo := filepath.Join(t.TempDir(), "repo")
	writeFiles(t, repo, files)
	for p, target := range links {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(repo, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(repo, p)); err != nil {
			t.Fatal(err)
		}
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "links")
	gitURL := serveGit(t, filepath.Dir(repo)) + "/" + filepath.Base(repo)

	// Everything refit said, by where it said it, to grep for the secrets.
	type output struct{ where, text string }
	var outputs []output
	say := func(where string, texts ...string) {
		for _, t := range texts {
			outputs = append(outputs, output{where, t})
		}
	}
	var runs []api.Run
	run := func(name string) api.Run {
		q, err := r.c.Run(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		run := waitRun(t, r.c, q.ID)
		runs = append(runs, run)
		t.Logf("%s: run %s %s %s", name, run.State, run.Step, run.Error)
		return run
	}
	for _, src := range []struct {
		kind   string
		source api.TaskSource
	}{{"dir", api.TaskSource{Dir: repo}}, {"git", api.TaskSource{Git: gitURL, Ref: "main"}}} {
		for _, tc := range refused {
			spec := api.TaskSpec{Name: src.kind + "-" + tc.name, Source: src.source, Context: tc.context, Dockerfile: tc.file}
			_, err := r.c.CreateTask(ctx, spec)
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, tc.want) {
				t.Errorf("%s: create: got %v, want 400 saying %q", spec.Name, err, tc.want)
			}
			if err != nil {
				say("the task-create error of "+spec.Name, err.Error())
			} else {
				run(spec.Name) // refused at create, so only on a broken refit
			}
		}
		for _, tc := range built {
			spec := api.TaskSpec{Name: src.kind + "-" + tc.name, Source: src.source, Context: tc.context}
			if _, err := r.c.CreateTask(ctx, spec); err != nil {
				say("the task-create error of "+spec.Name, err.Error())
				t.Errorf("%s: create: %v", spec.Name, err)
				continue
			}
			run := run(spec.Name)
			switch {
			case tc.name == "cp" && run.State != api.StateSucceeded:
				t.Errorf("%s: run %s at %s: %s; want it to build, links and all", spec.Name, run.State, run.Step, run.Error)
			case tc.name == "cp":
				// The links are in the image as links.
				var link bool
				for _, b := range imageBlobs(t, run.Image) {
					link = link || b == "app/link -> "+filepath.Join(outside, "secret.txt")
				}
				if !link {
					t.Errorf("%s: the image lacks app/link as a symlink", spec.Name)
				}
			case tc.name == "cpl" && (run.State != api.StateFailed || !strings.Contains(run.Error, "link") && !logNames(t, r.c, run.ID, "link: path escapes")):
				// BuildKit sometimes reports a sibling step's cancellation
				// as the solve's error; the COPY's own error is then in
				// the run's log.
				t.Errorf("%s: run %s: %s; want COPY of a link leading out to fail naming it", spec.Name, run.State, run.Error)
			}
		}
	}

	// Run records and logs.
	for _, run := range runs {
		id := run.ID
		got, err := r.c.GetRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(got)
		say("the run record of "+got.Task, string(b))
		err = r.c.Logs(ctx, id, false, func(c api.LogChunk) error {
			say("the run log of "+got.Task, string(c.Data))
			var s bkclient.SolveStatus
			if json.Unmarshal(c.Data, &s) == nil {
				for _, l := range s.Logs {
					say("the run log of "+got.Task, string(l.Data))
				}
				for _, w := range s.Warnings {
					say("the run log of "+got.Task, string(w.Short))
					for _, d := range w.Detail {
						say("the run log of "+got.Task, string(d))
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if run.Image != "" {
			say("the image of "+got.Task, imageBlobs(t, run.Image)...)
		}
	}
	var sawCopy bool
	for _, o := range outputs {
		sawCopy = sawCopy || strings.Contains(o.text, "COPY . /app/")
	}
	if !sawCopy {
		t.Error("the run logs lack the COPY step: the test reads the wrong logs")
	}
	// The event outbox, as the API serves it.
	req, _ := http.NewRequest("GET", r.APIURL+"/api/v1/events?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("run.succeeded")) {
		t.Errorf("events: %d %.200s, want the runs' events", resp.StatusCode, body)
	}
	say("the event outbox", string(body))
	say("the server log", logs.String())

	// (Where, not what: the text around a leak could be the environment.)
	for what, secret := range secrets {
		for _, o := range outputs {
			if strings.Contains(o.text, secret) {
				t.Errorf("%s leaked into %s", what, o.where)
			}
		}
	}
}

// imageBlobs returns the text of every blob reachable from the index at
// ref: manifests, configs, and every layer's files, names and link
// targets (attestations included).
func imageBlobs(t *testing.T, ref string) []string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("reading index %s: %v", ref, err)
	}
	raw, _ := idx.RawManifest()
	out := []string{string(raw)}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var files int
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := img.RawManifest()
		cfg, _ := img.RawConfigFile()
		out = append(out, string(raw), string(cfg))
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
			tr := tar.NewReader(bytes.NewReader(b))
			for {
				h, err := tr.Next()
				if err != nil {
					break // not a tar (an attestation) or the end
				}
				files++
				c, _ := io.ReadAll(tr)
				out = append(out, h.Name+" -> "+h.Linkname, string(c))
			}
		}
	}
	if files == 0 {
		t.Errorf("image %s: no files read from its layers", ref)
	}
	return out
}

// TestSourceLinksInsideWork: symlinks that stay inside the source are
// followed — a Dockerfile, a context directory and a .dockerignore linked
// from elsewhere in the repository — and ignore files apply as in Docker
// (the Dockerfile's own <Dockerfile>.dockerignore first, else the
// context's .dockerignore).
func TestSourceLinksInsideWork(t *testing.T) {
	r := startRefit(t, t.TempDir())
	ctx := context.Background()
	baseRef := r.RegistryAddr + "/base/busybox:1"
	pushBase(t, baseRef, "")

	repo := filepath.Join(t.TempDir(), "repo")
	writeFiles(t, repo, map[string]string{
		"shared/Dockerfile": "FROM " + baseRef + "\nCOPY . /app/\n" +
			"RUN test -e /app/keep.txt && test ! -e /app/ignored.txt && test -L /app/lnk && grep -q keep /app/lnk\n",
		"shared/ignore":                   "ignored.txt\n",
		"app/keep.txt":                    "keep\n",
		"app/ignored.txt":                 "ignored\n",
		"app/alt.Dockerfile":              "FROM " + baseRef + "\nCOPY . /app/\nRUN test ! -e /app/keep.txt && test -e /app/ignored.txt\n",
		"app/alt.Dockerfile.dockerignore": "keep.txt\n",
	})
	for p, target := range map[string]string{
		"app/Dockerfile":    "../shared/Dockerfile",
		"app/.dockerignore": "../shared/ignore",
		"app/lnk":           "keep.txt",
		"ctxlink":           "app",
	} {
		if err := os.Symlink(target, filepath.Join(repo, p)); err != nil {
			t.Fatal(err)
		}
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "links inside")
	gitURL := serveGit(t, filepath.Dir(repo)) + "/" + filepath.Base(repo)

	for _, src := range []struct {
		kind   string
		source api.TaskSource
	}{{"dir", api.TaskSource{Dir: repo}}, {"git", api.TaskSource{Git: gitURL, Ref: "main"}}} {
		for _, tc := range []struct{ name, context, dockerfile string }{
			{"linked", "app", ""},
			{"ctxlink", "ctxlink", ""},
			{"alt", "app", "alt.Dockerfile"},
		} {
			spec := api.TaskSpec{Name: src.kind + "-" + tc.name, Source: src.source, Context: tc.context, Dockerfile: tc.dockerfile}
			if _, err := r.c.CreateTask(ctx, spec); err != nil {
				t.Errorf("%s: create: %v", spec.Name, err)
				continue
			}
			q, err := r.c.Run(ctx, spec.Name)
			if err != nil {
				t.Fatal(err)
			}
			if run := waitRun(t, r.c, q.ID); run.State != api.StateSucceeded {
				t.Errorf("%s: run %s at %s: %s", spec.Name, run.State, run.Step, run.Error)
			}
		}
	}
}

// TestDirSourceStaysOutOfServerState: a dir source is read with the
// server's rights, so it may never be refit's data directory (admin token,
// key, database) or hold it, and --source-dir confines it further.
func TestDirSourceStaysOutOfServerState(t *testing.T) {
	data := t.TempDir()
	allowed := t.TempDir()
	outside := t.TempDir()
	r := startRefitWith(t, serve.Config{DataDir: data, SourceDirs: []string{allowed}})
	ctx := context.Background()
	token, err := os.ReadFile(r.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{allowed, outside} {
		writeFiles(t, d, map[string]string{"Dockerfile": "FROM busybox\n", "app/Dockerfile": "FROM busybox\n"})
	}
	// The data directory lies outside the allowed root here; make it
	// reachable through a link inside it, as an attacker would.
	if err := os.Symlink(data, filepath.Join(allowed, "state")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		spec api.TaskSpec
		want string
	}{
		{"the data directory", api.TaskSpec{Name: "x", Source: api.TaskSource{Dir: data}, Dockerfile: "admin-token"}, "refit's own state"},
		{"a link to it inside the allowed root", api.TaskSpec{Name: "x", Source: api.TaskSource{Dir: filepath.Join(allowed, "state")}, Dockerfile: "admin-token"}, "refit's own state"},
		{"outside the allowed root", api.TaskSpec{Name: "x", Source: api.TaskSource{Dir: outside}}, "--source-dir"},
	}
	for _, tc := range cases {
		_, err := r.c.CreateTask(ctx, tc.spec)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, tc.want) || !strings.Contains(ae.Message, "source.dir") {
			t.Errorf("%s: got %v, want 400 on source.dir saying %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), strings.TrimSpace(string(token))[:12]) {
			t.Errorf("%s: the error shows the admin token", tc.name)
		}
	}
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "ok", Source: api.TaskSource{Dir: filepath.Join(allowed, "app")}}); err != nil {
		t.Errorf("a directory inside the allowed root: %v", err)
	}
	if ts, err := r.c.ListTasks(ctx); err != nil || len(ts) != 1 {
		t.Errorf("tasks after the refusals: %d (%v), want only the allowed one", len(ts), err)
	}
}

// logNames reports whether a step of run id's BuildKit log failed with an
// error containing text.
func logNames(t *testing.T, c *client.Client, id, text string) bool {
	t.Helper()
	found := false
	err := c.Logs(context.Background(), id, false, func(ch api.LogChunk) error {
		var s bkclient.SolveStatus
		if json.Unmarshal(ch.Data, &s) == nil {
			for _, v := range s.Vertexes {
				found = found || strings.Contains(v.Error, text)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("reading the log of %s: %v", id, err)
	}
	return found
}

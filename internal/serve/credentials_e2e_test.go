package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/baseimage"
	"github.com/refit-dev/refit/internal/serve"
)

// lockedBuffer is a log sink tests can read while refit writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStoredRegistryLogin: a registry that wants a login refuses a run
// (clearly, naming it) until the login is stored in refit; then the base
// is resolved, pulled by BuildKit and the image pushed there, all with the
// stored login — and the password shows up nowhere: not in the API, the
// events, the run, refit's log or BuildKit's.
func TestStoredRegistryLogin(t *testing.T) {
	const user, password = "robot", "s3cret-pa55word-xyzzy"
	var refused atomic.Int32
	regHandler := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		regHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(private.Close)
	host := strings.TrimPrefix(private.URL, "http://")

	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := startRefitWith(t, serve.Config{Debounce: -1, PollInterval: time.Hour, Insecure: []string{host}, Logger: logger})
	ctx := context.Background()

	baseRef := host + "/base/busybox:1"
	basic := remote.WithAuth(&authn.Basic{Username: user, Password: password})
	if _, _, err := baseimage.Push(baseRef, "", basic); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + baseRef + "\nRUN echo private > /p\n"})
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "private", Image: host + "/apps/private", Source: api.TaskSource{Dir: dir}}); err != nil {
		t.Fatal(err)
	}

	// No login yet: the run fails, saying which registry refused.
	run, err := r.c.Run(ctx, "private")
	if err != nil {
		t.Fatal(err)
	}
	failed := waitRun(t, r.c, run.ID)
	if failed.State != api.StateFailed || failed.Step != "resolve" || !strings.Contains(failed.Error, host) ||
		!strings.Contains(failed.Error, "401") {
		t.Fatalf("run without a login: %s at %q: %s; want failed at resolve, naming %s and 401", failed.State, failed.Step, failed.Error, host)
	}

	if _, err := r.c.PutRegistryCredential(ctx, host, user, "wrong"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.PutRegistryCredential(ctx, host, user, password); err != nil { // replaces it
		t.Fatal(err)
	}
	if _, err := r.c.PutRegistryCredential(ctx, "https://"+host, user, password); err == nil || !strings.Contains(err.Error(), "registry host") {
		t.Errorf("a host with a scheme = %v, want a 400 about the registry host", err)
	}
	creds, err := r.c.ListRegistryCredentials(ctx)
	if err != nil || len(creds) != 1 || creds[0].Host != host || creds[0].Username != user {
		t.Fatalf("stored logins: %+v, %v; want %s for %s", creds, err, user, host)
	}

	refusedBefore := refused.Load()
	run, err = r.c.Run(ctx, "private")
	if err != nil {
		t.Fatal(err)
	}
	ok := waitRun(t, r.c, run.ID)
	if ok.State != api.StateSucceeded {
		t.Fatalf("run with the stored login: %s at %s: %s", ok.State, ok.Step, ok.Error)
	}
	pushed, err := name.ParseReference(host + "/apps/private:latest")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(pushed, basic)
	if err != nil || desc.Digest.String() != ok.Digest {
		t.Fatalf("pushed image at %s: %v, %v; want digest %s", pushed, desc, err, ok.Digest)
	}
	t.Logf("the private registry refused %d requests before the login, %d after (challenges before credentials are sent)",
		refusedBefore, refused.Load()-refusedBefore)

	// Where a password could leak: nowhere.
	var everything []string
	listing, _ := json.Marshal(creds)
	everything = append(everything, "API listing: "+string(listing))
	evs, err := r.c.ListEvents(ctx, api.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		everything = append(everything, "event "+e.Type+": "+string(e.Data))
	}
	for _, id := range []string{failed.ID, ok.ID} {
		got, _ := r.c.GetRun(ctx, id)
		b, _ := json.Marshal(got)
		everything = append(everything, "run: "+string(b))
		var runLog strings.Builder
		r.c.Logs(ctx, id, false, func(c api.LogChunk) error {
			b, _ := json.Marshal(c)
			runLog.Write(b)
			return nil
		})
		everything = append(everything, "run log: "+runLog.String())
	}
	everything = append(everything, "refit log: "+logs.String())
	data := filepath.Dir(r.TokenFile)
	bk, _ := os.ReadFile(filepath.Join(data, "buildkit", "buildkitd.log"))
	everything = append(everything, "buildkitd log: "+string(bk))
	for _, f := range []string{"refit.db", "refit.db-wal"} {
		db, _ := os.ReadFile(filepath.Join(data, f))
		everything = append(everything, "database file "+f+": "+string(db))
	}
	for _, s := range everything {
		if strings.Contains(s, password) {
			what, _, _ := strings.Cut(s, ":")
			t.Errorf("the password appears in the %s", what)
		}
	}

	// A changed login applies from the next run on: the registry
	// client's session built with the old one is dropped, so the base's
	// look-up is refused, not answered from that session.
	if _, err := r.c.PutRegistryCredential(ctx, host, user, "changed-and-wrong"); err != nil {
		t.Fatal(err)
	}
	run, err = r.c.Run(ctx, "private")
	if err != nil {
		t.Fatal(err)
	}
	if again := waitRun(t, r.c, run.ID); again.State != api.StateFailed || again.Step != "resolve" || !strings.Contains(again.Error, "401") {
		t.Errorf("run after the login changed: %s at %q: %s; want failed at resolve with 401", again.State, again.Step, again.Error)
	}
}

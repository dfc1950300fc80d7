package registry

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func distributionRegistry(t *testing.T, cfg Config) *Registry {
	t.Helper()
	r, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewPushPull(t *testing.T) { testPushPull(t, distributionRegistry) }

func TestNewIndex(t *testing.T) { testIndex(t, distributionRegistry) }

func TestNewRequiresDir(t *testing.T) {
	if _, err := New(t.Context(), Config{}); err == nil {
		t.Fatal("New without Dir succeeded")
	}
}

// A second Registry on the same Dir serves what the first stored.
func TestNewPersists(t *testing.T) {
	dir := t.TempDir()
	first := serve(t, distributionRegistry(t, Config{Dir: dir}))
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(first.ref(t, "test/app:v1"), img, ctxOpt(t)); err != nil {
		t.Fatal(err)
	}

	second := serve(t, distributionRegistry(t, Config{Dir: dir}))
	pulled, err := remote.Image(second.ref(t, "test/app:v1"), ctxOpt(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := digestOf(t, pulled), digestOf(t, img); got != want {
		t.Errorf("digest %s, want %s", got, want)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
}

// Copying an image between repositories of the registry mounts its blobs
// instead of uploading them again.
func TestNewCrossRepositoryMount(t *testing.T) {
	srv := serve(t, distributionRegistry(t, Config{Dir: t.TempDir()}))
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(srv.ref(t, "test/app:v1"), img, ctxOpt(t)); err != nil {
		t.Fatal(err)
	}
	src, err := remote.Image(srv.ref(t, "test/app:v1"), ctxOpt(t))
	if err != nil {
		t.Fatal(err)
	}
	before := len(srv.requests())
	if err := remote.Write(srv.ref(t, "test/copy:v1"), src, ctxOpt(t)); err != nil {
		t.Fatal(err)
	}

	mounted := 0
	for _, r := range srv.requests()[before:] {
		if !strings.HasPrefix(r.path, "/v2/test/copy/blobs/uploads/") {
			continue
		}
		if r.method == http.MethodPost && strings.Contains(r.query, "mount=") && strings.Contains(r.query, "from=test%2Fapp") && r.status == http.StatusCreated {
			mounted++
			continue
		}
		t.Errorf("blob upload request %s %s?%s (status %d), want only mounts", r.method, r.path, r.query, r.status)
	}
	if want := 4; mounted != want { // three layers and the config
		t.Errorf("%d blobs mounted, want %d", mounted, want)
	}
	pulled, err := remote.Image(srv.ref(t, "test/copy:v1"), ctxOpt(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := digestOf(t, pulled), digestOf(t, img); got != want {
		t.Errorf("copy digest %s, want %s", got, want)
	}
}

// Distribution's own logging goes to Config.Logger at debug level, not to
// logrus's standard logger.
func TestNewLogging(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := serve(t, distributionRegistry(t, Config{Dir: t.TempDir(), Logger: l}))

	resp, err := http.Get("http://" + srv.host + "/v2/test/none/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{"component=distribution", "response completed with error", `msg="registry request"`, "status=404"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

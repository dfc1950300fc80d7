package regclient_test

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/registry"
)

// pathLog records request paths.
type pathLog struct {
	mu    sync.Mutex
	paths []string
	next  http.Handler
}

func (p *pathLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.paths = append(p.paths, r.Method+" "+r.URL.Path)
	p.mu.Unlock()
	p.next.ServeHTTP(w, r)
}

func (p *pathLog) saw(sub string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.paths {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestReferrers pushes an artifact referring to an image and lists it
// back, on the embedded registry (distribution: no referrers API, so
// the sha256-<hex> tag holds the list) and on a registry with the
// referrers API (go-containerregistry's, with referrers enabled).
func TestReferrers(t *testing.T) {
	embedded, err := registry.New(context.Background(), registry.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		handler http.Handler
		via     string
	}{
		{"distribution", embedded, regclient.ViaTag},
		{"referrers API", ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)), ggcr.WithReferrersSupport(true)), regclient.ViaAPI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pl := &pathLog{next: tc.handler}
			srv := httptest.NewServer(pl)
			defer srv.Close()
			host := strings.TrimPrefix(srv.URL, "http://")
			repo := host + "/team/app"
			img, err := random.Image(64, 1)
			if err != nil {
				t.Fatal(err)
			}
			ref, _ := name.ParseReference(repo + ":v1")
			if err := remote.Write(ref, img); err != nil {
				t.Fatal(err)
			}
			d, _ := img.Digest()
			raw, _ := img.RawManifest()
			mt, _ := img.MediaType()
			subject := regclient.Descriptor{MediaType: string(mt), Digest: d.String(), Size: int64(len(raw))}

			c := regclient.New(regclient.Config{})
			list, via, err := c.Referrers(ctx, repo, subject.Digest)
			if err != nil || len(list) != 0 || via != tc.via {
				t.Fatalf("before any push: referrers %v via %q (%v), want none via %q", list, via, err, tc.via)
			}
			art := regclient.Artifact{ArtifactType: "application/vnd.dsse.envelope.v1+json", Blob: []byte(`{"hello":1}`),
				BlobMediaType: "application/vnd.dsse.envelope.v1+json", Annotations: map[string]string{"dev.refit.run": "r-1"}}
			desc, via, err := c.PushReferrer(ctx, repo, subject, art)
			if err != nil || via != tc.via {
				t.Fatalf("PushReferrer: via %q, %v; want via %q", via, err, tc.via)
			}
			// Again: idempotent, one entry.
			if _, _, err := c.PushReferrer(ctx, repo, subject, art); err != nil {
				t.Fatal(err)
			}
			art2 := art
			art2.Blob = []byte(`{"hello":2}`)
			desc2, _, err := c.PushReferrer(ctx, repo, subject, art2)
			if err != nil {
				t.Fatal(err)
			}
			list, via, err = c.Referrers(ctx, repo, subject.Digest)
			if err != nil || via != tc.via || len(list) != 2 {
				t.Fatalf("referrers = %+v via %q (%v), want 2 via %q", list, via, err, tc.via)
			}
			found := map[string]bool{}
			for _, l := range list {
				found[l.Digest] = l.Annotations["dev.refit.run"] == "r-1"
			}
			if !found[desc.Digest] || !found[desc2.Digest] {
				t.Errorf("referrers %+v lack %s or %s with their annotations", list, desc.Digest, desc2.Digest)
			}
			// The tag still points at the image.
			if got, err := c.Resolve(ctx, repo+":v1"); err != nil || got != d.String() {
				t.Errorf("tag v1 = %s (%v), want the image %s unmoved", got, err, d)
			}
			if tc.via == regclient.ViaTag && !pl.saw("/manifests/sha256-"+strings.TrimPrefix(d.String(), "sha256:")) {
				t.Errorf("no request to the fallback tag")
			}
			// The artifact reads back, verified by digest.
			m, mt2, err := c.FetchManifest(ctx, repo, desc.Digest, 1<<20)
			if err != nil || mt2 != regclient.MediaTypeOCIManifest {
				t.Fatalf("FetchManifest: %s %v", mt2, err)
			}
			var man struct {
				Layers  []regclient.Descriptor
				Subject regclient.Descriptor
			}
			if err := json.Unmarshal(m, &man); err != nil || man.Subject.Digest != d.String() || len(man.Layers) != 1 {
				t.Fatalf("artifact manifest %s (%v)", m, err)
			}
			b, err := c.FetchBlob(ctx, repo, man.Layers[0].Digest, 1<<20)
			if err != nil || string(b) != `{"hello":1}` {
				t.Errorf("blob = %q (%v)", b, err)
			}
			if _, err := c.FetchBlob(ctx, repo, man.Layers[0].Digest, 3); err == nil || !strings.Contains(err.Error(), "limit") {
				t.Errorf("FetchBlob over its limit: %v, want a limit error", err)
			}
		})
	}
}

// TestReferrersHostileRegistry: a registry whose referrers answers are
// garbage or huge gets an error, never a list.
func TestReferrersHostileRegistry(t *testing.T) {
	subject := "sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct {
		name string
		body string
		want string
	}{
		{"not JSON", "<html>", "not an OCI index"},
		{"wrong schema", `{"schemaVersion":1,"manifests":[]}`, "schemaVersion"},
		{"wrong type", `{"schemaVersion":2,"mediaType":"text/plain","manifests":[]}`, "media type"},
		{"huge", `{"schemaVersion":2,"manifests":[` + strings.Repeat(`{"digest":"x"},`, regclient.MaxReferrersIndex/14) + `{}]}`, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, "/referrers/") {
					w.Header().Set("Content-Type", regclient.MediaTypeOCIIndex)
					io.WriteString(w, tc.body)
					return
				}
				w.WriteHeader(http.StatusOK)
			}))
			defer srv.Close()
			c := regclient.New(regclient.Config{})
			list, _, err := c.Referrers(context.Background(), strings.TrimPrefix(srv.URL, "http://")+"/app", subject)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("referrers = %v, %v; want an error saying %q", list, err, tc.want)
			}
		})
	}
}

func FuzzParseReferrersIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("0", 64) + `","size":3,"artifactType":"x","annotations":{"a":"b"}}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := regclient.ParseReferrersIndex(b)
		if err != nil && list != nil {
			t.Fatalf("error %v with a list", err)
		}
		for _, d := range list {
			if !strings.HasPrefix(d.Digest, "sha256:") || len(d.Digest) != 71 || d.Size < 0 {
				t.Fatalf("invalid descriptor kept: %+v", d)
			}
		}
	})
}

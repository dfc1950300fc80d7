package hook

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
)

// nameFields are the JSON paths a format takes a push's names from.
type nameFields struct {
	registry, repository, tag string
}

// namedBody is one push notification of a format with the registry host,
// repository and tag given; it returns the body and the fields' paths.
type namedBody func(registry, repository, tag string) (string, nameFields)

// js JSON-encodes s, so that any string, control characters included, can
// be put into a body.
func js(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

var namedBodies = map[Format]namedBody{
	FormatDistribution: func(reg, repo, tag string) (string, nameFields) {
		return `{"events":[{"id":"e1","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
				`"digest":"` + digestA + `","repository":` + js(repo) + `,"tag":` + js(tag) + `},"request":{"host":` + js(reg) + `}}]}`,
			nameFields{"events[0].request.host", "events[0].target.repository", "events[0].target.tag"}
	},
	FormatHarbor: func(reg, repo, tag string) (string, nameFields) {
		return `{"type":"PUSH_ARTIFACT","occur_at":1700000000,"event_data":{"resources":[{"digest":"` + digestA + `","tag":` + js(tag) +
				`,"resource_url":` + js(reg+"/"+repo+":"+tag) + `}],"repository":{"repo_full_name":` + js(repo) + `}}}`,
			nameFields{"event_data.resources[0].resource_url", "event_data.repository.repo_full_name", "event_data.resources[0].tag"}
	},
	FormatDockerHub: func(_, repo, tag string) (string, nameFields) {
		return `{"push_data":{"tag":` + js(tag) + `,"pushed_at":1700000000},"repository":{"repo_name":` + js(repo) + `}}`,
			nameFields{"", "repository.repo_name", "push_data.tag"}
	},
	FormatACR: func(reg, repo, tag string) (string, nameFields) {
		return `[{"id":"a1","eventType":"Microsoft.ContainerRegistry.ImagePushed","eventTime":"2024-01-01T00:00:00Z","data":{"action":"push",` +
				`"target":{"digest":"` + digestA + `","repository":` + js(repo) + `,"tag":` + js(tag) + `},"request":{"host":` + js(reg) + `}}}]`,
			nameFields{"events[0].data.request.host", "events[0].data.target.repository", "events[0].data.target.tag"}
	},
}

// hostileRepositories are repository names a registry (or someone with
// its webhook secret) might send that are no image reference.
var hostileRepositories = []struct{ repo, problem string }{
	{"Base/BB", "must be lowercase"},
	{"acme/Base", "must be lowercase"},
	{"../../etc", "want path components"},
	{"acme/../../etc/passwd", "want path components"},
	{"/etc/passwd", "want path components"},
	{"acme/", "want path components"},
	{"acme//base", "want path components"},
	{"acme base", "want path components"},
	{"acme\tbase", "want path components"},
	{"acme\nbase", "want path components"},
	{"acme\x00base", "want path components"},
	{"acme\x1b[31mbase", "want path components"},
	{"acme/base:1", "want path components"},
	{"acme/base@sha256", "want path components"},
	{"-acme/base", "want path components"},
	{"acme/.base", "want path components"},
	{"acme..base", "want path components"},
	{"acme/bäse", "want path components"},
	{"r.example:5000/acme", "want path components"},
	{strings.Repeat("a", 300), "longer than 255 characters"},
	{strings.Repeat("ab/", 100) + "c", "longer than 255 characters"},
}

// TestHostileRepositoryNames: a notification with a valid secret but a
// repository name that is no image reference is refused, in every format,
// with an error naming the field and quoting the name (escaped, bounded),
// and Accept is never called.
func TestHostileRepositoryNames(t *testing.T) {
	srv, rec := newServer(t, Config{})
	for _, f := range []Format{FormatDistribution, FormatHarbor, FormatDockerHub, FormatACR} {
		for _, tt := range hostileRepositories {
			body, fields := namedBodies[f]("registry.example:5000", tt.repo, "v1")
			resp := post(t, srv, f, body)
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(resp.body), &e); err != nil {
				t.Fatalf("%s %q: body %q: %v", f, tt.repo, resp.body, err)
			}
			repo := tt.repo
			if f == FormatDockerHub && !strings.Contains(repo, "/") {
				repo = "library/" + repo // Docker Hub's official images
			}
			want := fields.repository + ": invalid repository name " + quote(repo)
			if resp.status != http.StatusBadRequest || !strings.HasPrefix(e.Error, want) || !strings.Contains(e.Error, tt.problem) {
				t.Errorf("%s %q: %d %q, want 400 %q… (%s)", f, tt.repo, resp.status, e.Error, want, tt.problem)
			}
			if len(e.Error) > 300 || strings.ContainsFunc(e.Error, unicode.IsControl) {
				t.Errorf("%s %q: error not bounded and escaped: %q", f, tt.repo, e.Error)
			}
		}
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("Accept called %d times for refused names", n)
	}
}

// TestHostileTagsAndHosts: tags and registry hosts are held to the same
// grammar, and a valid push next to an invalid one is not taken either.
func TestHostileTagsAndHosts(t *testing.T) {
	tests := []struct {
		format      Format
		registry    string
		tag         string
		field, want string
	}{
		{FormatDistribution, "registry.example", "-v1", "tag", `invalid tag "-v1"`},
		{FormatHarbor, "registry.example", ".v1", "tag", `invalid tag ".v1"`},
		{FormatDockerHub, "", strings.Repeat("t", 129), "tag", `invalid tag "tttt`},
		{FormatACR, "registry.example", "v1\r\n", "tag", `invalid tag "v1\r\n"`},
		{FormatDistribution, "registry example", "v1", "registry", `invalid registry host "registry example"`},
		{FormatDistribution, "registry_1.example", "v1", "registry", `invalid registry host "registry_1.example"`},
		{FormatACR, "a/b", "v1", "registry", `invalid registry host "a/b"`},
	}
	for _, tt := range tests {
		body, fields := namedBodies[tt.format](tt.registry, "acme/base", tt.tag)
		_, err := parsePushes(tt.format, "", []byte(body))
		path := fields.tag
		if tt.field == "registry" {
			path = fields.registry
		}
		if err == nil || !strings.HasPrefix(err.Error(), path+": "+tt.want) {
			t.Errorf("%s registry %q tag %q: error %v, want %q", tt.format, tt.registry, tt.tag, err, path+": "+tt.want)
		}
	}

	good := `{"id":"e0","action":"push","target":{"repository":"acme/base","tag":"v1","digest":"` + digestA + `"}}`
	bad := `{"id":"e1","action":"push","target":{"repository":"Base/BB","tag":"v1","digest":"` + digestA + `"}}`
	pushes, err := parsePushes(FormatDistribution, "", []byte(`{"events":[`+good+`,`+bad+`]}`))
	if want := `events[1].target.repository: invalid repository name "Base/BB"`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("good then bad event: %v %v, want %q", pushes, err, want)
	}
}

// TestValidNamesStillAccepted: names real registries send keep working.
func TestValidNamesStillAccepted(t *testing.T) {
	for _, tt := range []struct{ registry, repo, tag string }{
		{"registry.example:5000", "acme/base", "v1"},
		{"localhost:5000", "a", "latest"},
		{"[::1]:5000", "a__b/c--d/e.f_g", "V1.2_3-rc"},
		{"myregistry.azurecr.io", "team/sub/app", "20240101"},
		{"Registry.Example", strings.Repeat("a", 200) + "/b", strings.Repeat("t", 128)},
	} {
		for _, f := range []Format{FormatDistribution, FormatHarbor, FormatDockerHub, FormatACR} {
			body, _ := namedBodies[f](tt.registry, tt.repo, tt.tag)
			pushes, err := parsePushes(f, "", []byte(body))
			repo := tt.repo
			if f == FormatDockerHub && !strings.Contains(repo, "/") {
				repo = "library/" + repo
			}
			if err != nil || len(pushes) != 1 || pushes[0].Repository != repo || pushes[0].Tag != tt.tag {
				t.Errorf("%s %s/%s:%s: %+v, %v; want one push", f, tt.registry, tt.repo, tt.tag, pushes, err)
				continue
			}
			checkReference(t, pushes[0])
		}
	}
}

// checkReference fails t unless p's reference parses the way refit's
// index reads references: as Docker does (distribution/reference, what
// the server's Accept uses) and as go-containerregistry does (what the
// index's registry client uses), naming p's repository and tag.
func checkReference(t *testing.T, p Push) {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(p.Ref())
	if err != nil {
		t.Fatalf("accepted push %+v: Ref %q does not parse: %v", p, p.Ref(), err)
	}
	suffix := "/" + p.Repository + ":" + p.Tag
	if p.Tag == "" {
		suffix = "/" + p.Repository + "@" + p.Digest
	}
	if !strings.HasSuffix(named.String(), suffix) {
		t.Fatalf("accepted push %+v: Ref %q reads as %q, not ending in %q", p, p.Ref(), named, suffix)
	}
	if _, err := name.ParseReference(reference.TagNameOnly(named).String()); err != nil {
		t.Fatalf("accepted push %+v: go-containerregistry refuses %q: %v", p, named, err)
	}
}

// FuzzHostileNames puts arbitrary registry hosts, repository names and
// tags into each format's push notification: Parse never panics, every
// push it accepts has a valid image reference, and every error names the
// field it is about and stays bounded and escaped.
func FuzzHostileNames(f *testing.F) {
	formats := []Format{FormatDistribution, FormatHarbor, FormatDockerHub, FormatACR}
	for i := range formats {
		f.Add(uint8(i), "registry.example:5000", "acme/base", "v1")
		f.Add(uint8(i), "", "debian", "12")
		for _, h := range hostileRepositories {
			f.Add(uint8(i), "r.example", h.repo, "latest")
		}
		f.Add(uint8(i), "r.example", "acme/base", "-x")
		f.Add(uint8(i), "bad host", "acme/base", "x")
		f.Add(uint8(i), "[::1]:5000", "a/b", "x")
	}
	f.Fuzz(func(t *testing.T, fi uint8, registry, repo, tag string) {
		format := formats[int(fi)%len(formats)]
		body, fields := namedBodies[format](registry, repo, tag)
		pushes, err := parsePushes(format, "application/json", []byte(body))
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %q (%T) names no field", err, err)
			}
			named := false
			for _, p := range []string{fields.registry, fields.repository, fields.tag} {
				named = named || p != "" && fe.path == p
			}
			if !named {
				t.Fatalf("error %q is about %q, none of the name fields %+v", err, fe.path, fields)
			}
			if !strings.HasPrefix(err.Error(), fe.path+": ") || len(err.Error()) > 400 ||
				strings.ContainsFunc(err.Error(), unicode.IsControl) {
				t.Fatalf("error %q: want %q first, bounded and escaped", err, fe.path+": ")
			}
			return
		}
		if len(pushes) != 1 {
			t.Fatalf("%d pushes, want 1", len(pushes))
		}
		p := pushes[0]
		wantRepo := repo
		if format == FormatDockerHub && !strings.Contains(repo, "/") {
			wantRepo = "library/" + repo
		}
		if p.Repository != wantRepo || p.Tag != tag {
			t.Fatalf("push %+v, want repository %q tag %q", p, wantRepo, tag)
		}
		checkReference(t, p)
	})
}

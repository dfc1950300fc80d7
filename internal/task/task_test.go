package task_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refit-dev/refit/internal/task"
)

// good is a minimal valid spec; each bad case below changes one field.
func good() task.Spec {
	return task.Spec{Name: "api", Source: task.Source{Git: "https://example.com/api.git"}}
}

func TestValidateGood(t *testing.T) {
	tests := []struct {
		name string
		spec func(*task.Spec)
	}{
		{"minimal git", func(s *task.Spec) {}},
		{"git with ref", func(s *task.Spec) { s.Source.Ref = "main" }},
		{"absolute dir", func(s *task.Spec) { s.Source = task.Source{Dir: "/src/api"} }},
		{"defaults applied", func(s *task.Spec) { *s = s.Defaults() }},
		{"name with dots dashes underscores", func(s *task.Spec) { s.Name = "a0.b_c-d" }},
		{"name of 63 chars", func(s *task.Spec) { s.Name = strings.Repeat("a", 63) }},
		{"nested context", func(s *task.Spec) { s.Context = "services/api" }},
		{"context with .. staying inside", func(s *task.Spec) { s.Context = "a/../b" }},
		{"dotdot-prefixed directory name", func(s *task.Spec) { s.Context = "..hidden" }},
		{"dockerfile in subdir", func(s *task.Spec) { s.Dockerfile = "build/Dockerfile.prod" }},
		{"build args", func(s *task.Spec) { s.BuildArgs = map[string]string{"GO_VERSION": "1.26", "_x1": ""} }},
		{"target", func(s *task.Spec) { s.Target = "runtime" }},
		{"platforms", func(s *task.Spec) { s.Platforms = []string{"linux/amd64", "linux/arm64/v8", "linux/arm/v7"} }},
		{"embedded image", func(s *task.Spec) { s.Image = "team/api" }},
		{"registry image", func(s *task.Spec) { s.Image = "registry.example/team/api" }},
		{"registry with port", func(s *task.Spec) { s.Image = "localhost:5000/api" }},
		{"plain tags", func(s *task.Spec) { s.Tags = []string{"latest", "v1.2.3", "_x", "A-b.c_d"} }},
		{"template tags", func(s *task.Spec) {
			s.Tags = []string{"{{.Run.ID}}", "sha-{{.Commit.Short}}", "{{.Task.Name}}-{{.Commit.SHA}}"}
		}},
		{"triggers", func(s *task.Spec) {
			s.Triggers = &task.Triggers{Commit: task.CommitOn(), Schedule: task.Schedules{{Name: "nightly", Cron: "@daily"}}, BaseScope: "all", Patch: "rebase"}
		}},
		{"empty triggers", func(s *task.Spec) { s.Triggers = &task.Triggers{} }},
		{"build arg value with tab and unicode", func(s *task.Spec) { s.BuildArgs = map[string]string{"A": "x\ty é ✓"} }},
		{"run template on a dir source", func(s *task.Spec) {
			s.Source = task.Source{Dir: "/src/api"}
			s.Tags = []string{"{{.Run.ID}}", "{{.Task.Name}}-{{printf \"%s\" .Run.ID}}"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.spec(&s)
			if err := s.Validate(); err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", s, err)
			}
		})
	}
}

func TestValidateBad(t *testing.T) {
	tests := []struct {
		name  string
		spec  func(*task.Spec)
		field string
	}{
		{"empty name", func(s *task.Spec) { s.Name = "" }, "name"},
		{"uppercase name", func(s *task.Spec) { s.Name = "API" }, "name"},
		{"name starting with dash", func(s *task.Spec) { s.Name = "-api" }, "name"},
		{"name with slash", func(s *task.Spec) { s.Name = "a/b" }, "name"},
		{"name of 64 chars", func(s *task.Spec) { s.Name = strings.Repeat("a", 64) }, "name"},
		{"no source", func(s *task.Spec) { s.Source = task.Source{} }, "source"},
		{"both sources", func(s *task.Spec) { s.Source = task.Source{Git: "https://x/y.git", Dir: "/src"} }, "source"},
		{"ref without git", func(s *task.Spec) { s.Source = task.Source{Dir: "/src", Ref: "main"} }, "source.ref"},
		{"relative dir", func(s *task.Spec) { s.Source = task.Source{Dir: "src/api"} }, "source.dir"},
		{"context escaping", func(s *task.Spec) { s.Context = "../other" }, "context"},
		{"context escaping after clean", func(s *task.Spec) { s.Context = "a/../../b" }, "context"},
		{"context is ..", func(s *task.Spec) { s.Context = ".." }, "context"},
		{"absolute context", func(s *task.Spec) { s.Context = "/etc" }, "context"},
		{"absolute dockerfile", func(s *task.Spec) { s.Dockerfile = "/etc/Dockerfile" }, "dockerfile"},
		{"dockerfile escaping", func(s *task.Spec) { s.Dockerfile = "../Dockerfile" }, "dockerfile"},
		{"build arg with dash", func(s *task.Spec) { s.BuildArgs = map[string]string{"GO-VERSION": "1"} }, "buildArgs"},
		{"build arg starting with digit", func(s *task.Spec) { s.BuildArgs = map[string]string{"1X": "1"} }, "buildArgs"},
		{"empty build arg name", func(s *task.Spec) { s.BuildArgs = map[string]string{"": "1"} }, "buildArgs"},
		{"platform without arch", func(s *task.Spec) { s.Platforms = []string{"linux"} }, "platforms"},
		{"platform uppercase", func(s *task.Spec) { s.Platforms = []string{"linux/amd64", "Linux/AMD64"} }, "platforms"},
		{"platform too deep", func(s *task.Spec) { s.Platforms = []string{"linux/arm/v7/x"} }, "platforms"},
		{"image with tag", func(s *task.Spec) { s.Image = "api:v1" }, "image"},
		{"image with registry port and tag", func(s *task.Spec) { s.Image = "localhost:5000/api:v1" }, "image"},
		{"image with digest", func(s *task.Spec) {
			s.Image = "api@sha256:" + strings.Repeat("a", 64)
		}, "image"},
		{"uppercase image", func(s *task.Spec) { s.Image = "Team/API" }, "image"},
		{"image with space", func(s *task.Spec) { s.Image = "my api" }, "image"},
		{"bad tag", func(s *task.Spec) { s.Tags = []string{"latest", "-v1"} }, "tags[1]"},
		{"tag with colon", func(s *task.Spec) { s.Tags = []string{"a:b"} }, "tags[0]"},
		{"tag too long", func(s *task.Spec) { s.Tags = []string{strings.Repeat("t", 129)} }, "tags[0]"},
		{"empty tag", func(s *task.Spec) { s.Tags = []string{""} }, "tags[0]"},
		{"bad template", func(s *task.Spec) { s.Tags = []string{"ok", "{{.Run.ID"} }, "tags[1]"},
		{"build arg value with newline", func(s *task.Spec) { s.BuildArgs = map[string]string{"A": "1", "FOO": "x\ny"} }, "buildArgs.FOO"},
		{"build arg value with NUL", func(s *task.Spec) { s.BuildArgs = map[string]string{"FOO": "x\x00"} }, "buildArgs.FOO"},
		{"build arg value with CR", func(s *task.Spec) { s.BuildArgs = map[string]string{"FOO": "x\r"} }, "buildArgs.FOO"},
		{"build arg value with DEL", func(s *task.Spec) { s.BuildArgs = map[string]string{"FOO": "\x7f"} }, "buildArgs.FOO"},
		{"build arg value with C1 control", func(s *task.Spec) { s.BuildArgs = map[string]string{"FOO": "\u0085"} }, "buildArgs.FOO"},
		{"build arg value not UTF-8", func(s *task.Spec) { s.BuildArgs = map[string]string{"FOO": "\xff"} }, "buildArgs.FOO"},
		{"build arg name with newline", func(s *task.Spec) { s.BuildArgs = map[string]string{"A\nB": "1"} }, "buildArgs"},
		{"build arg name with NUL", func(s *task.Spec) { s.BuildArgs = map[string]string{"A\x00": "1"} }, "buildArgs"},
		{"template of an unknown field", func(s *task.Spec) { s.Tags = []string{"latest", "{{.Env.HOME}}"} }, "tags[1]"},
		{"template of an unknown subfield", func(s *task.Spec) { s.Tags = []string{"{{.Run.Number}}"} }, "tags[0]"},
		{"template giving a bad tag", func(s *task.Spec) { s.Tags = []string{"{{.Run.ID}}:x"} }, "tags[0]"},
		{"template too long for a run ID", func(s *task.Spec) { s.Tags = []string{strings.Repeat("x", 110) + "{{.Run.ID}}"} }, "tags[0]"},
		{"commit template on a dir source", func(s *task.Spec) {
			s.Source = task.Source{Dir: "/src/api"}
			s.Tags = []string{"{{.Commit.Short}}"}
		}, "tags[0]"},
		{"bad baseScope", func(s *task.Spec) { s.Triggers = &task.Triggers{BaseScope: "final"} }, "triggers.baseScope"},
		{"bad patch", func(s *task.Spec) { s.Triggers = &task.Triggers{Patch: "squash"} }, "triggers.patch"},
		{"bad rebuildWhen", func(s *task.Spec) {
			s.Triggers = &task.Triggers{BaseChange: &task.BaseChange{RebuildWhen: "always"}}
		}, "triggers.baseChange.rebuildWhen"},
		{"bad minSeverity", func(s *task.Spec) {
			s.Triggers = &task.Triggers{BaseChange: &task.BaseChange{RebuildWhen: "fixes", MinSeverity: "severe"}}
		}, "triggers.baseChange.minSeverity"},
		{"bad wait", func(s *task.Spec) { s.Triggers = &task.Triggers{BaseChange: &task.BaseChange{Wait: "2 minutes"}} }, "triggers.baseChange.wait"},
		{"urgent without severity", func(s *task.Spec) {
			s.Triggers = &task.Triggers{BaseChange: &task.BaseChange{Urgent: &task.Urgent{Debounce: "0s"}}}
		}, "triggers.baseChange.urgent.severity"},
		{"bad urgent debounce", func(s *task.Spec) {
			s.Triggers = &task.Triggers{BaseChange: &task.BaseChange{Urgent: &task.Urgent{Severity: "critical", Debounce: "-1s"}}}
		}, "triggers.baseChange.urgent.debounce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.spec(&s)
			err := s.Validate()
			var fe *task.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate(%+v) = %v, want a *FieldError for %s", s, err, tt.field)
			}
			if fe.Field != tt.field {
				t.Errorf("Validate(%+v) names field %q (%v), want %q", s, fe.Field, err, tt.field)
			}
			if !strings.HasPrefix(err.Error(), tt.field+": ") || fe.Msg == "" {
				t.Errorf("error %q: want %q followed by a message", err, tt.field+": ")
			}
		})
	}
}

// TestValidateMessages: the errors a user reads say what is wrong in their
// terms.
func TestValidateMessages(t *testing.T) {
	tests := []struct {
		name string
		spec func(*task.Spec)
		want string
	}{
		{"newline in a build arg", func(s *task.Spec) { s.BuildArgs = map[string]string{"FOO": "a\nb"} },
			"buildArgs.FOO: value contains a control character (U+000A)"},
		{"NUL in a build arg", func(s *task.Spec) { s.BuildArgs = map[string]string{"FOO": "a\x00"} },
			"buildArgs.FOO: value contains a control character (U+0000)"},
		{"unknown template field", func(s *task.Spec) { s.Tags = []string{"{{.Env.HOME}}"} },
			"can't evaluate field Env"},
		{"unknown template field lists the known ones", func(s *task.Spec) { s.Tags = []string{"{{.Env.HOME}}"} },
			".Run.ID, .Commit.SHA, .Commit.Short and .Task.Name"},
		{"commit on a dir source", func(s *task.Spec) {
			s.Source = task.Source{Dir: "/src"}
			s.Tags = []string{"{{.Commit.SHA}}"}
		}, "a source.dir has no commit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.spec(&s)
			if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	got := task.Spec{Name: "api", Source: task.Source{Git: "https://example.com/api.git"}}.Defaults()
	want := task.Spec{
		Name:       "api",
		Source:     task.Source{Git: "https://example.com/api.git", Ref: "HEAD"},
		Context:    ".",
		Dockerfile: "Dockerfile",
		Platforms:  []string{task.HostPlatform()},
		Image:      "api",
		Tags:       []string{"latest"},
		Triggers:   &task.Triggers{Commit: task.CommitOn(), Base: true, Manual: true, BaseScope: "runtime", Patch: "rebuild"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Defaults() mismatch (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Defaults().Validate() = %v, want nil", err)
	}
	if again := got.Defaults(); !cmp.Equal(again, got) {
		t.Errorf("Defaults is not idempotent: %s", cmp.Diff(got, again))
	}
}

func TestDefaultsKeepsSetFields(t *testing.T) {
	in := task.Spec{
		Name:       "api",
		Source:     task.Source{Dir: "/src"},
		Context:    "svc",
		Dockerfile: "Dockerfile.prod",
		Platforms:  []string{"linux/arm64"},
		Image:      "registry.example/api",
		Tags:       []string{"{{.Run.ID}}"},
		Triggers:   &task.Triggers{Manual: true, BaseScope: "all", Patch: "rebase"},
	}
	got := in.Defaults()
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("Defaults() changed set fields (-want +got):\n%s", diff)
	}
	if got.Source.Ref != "" {
		t.Errorf("Defaults() gave a dir source ref %q, want none", got.Source.Ref)
	}
}

func TestDefaultsPartialTriggers(t *testing.T) {
	in := task.Spec{Name: "api", Source: task.Source{Git: "g"}, Triggers: &task.Triggers{Base: true}}
	got := in.Defaults()
	want := &task.Triggers{Base: true, BaseScope: "runtime", Patch: "rebuild"}
	if diff := cmp.Diff(want, got.Triggers); diff != "" {
		t.Errorf("Defaults().Triggers mismatch (-want +got):\n%s", diff)
	}
}

func tagData(runID, sha string) task.TagData {
	var d task.TagData
	d.Run.ID = runID
	d.Commit.SHA = sha
	if len(sha) >= 7 {
		d.Commit.Short = sha[:7]
	}
	d.Task.Name = "api"
	return d
}

func TestRenderTags(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name      string
		templates []string
		data      task.TagData
		want      []string
	}{
		{"run id", []string{"{{.Run.ID}}"}, tagData("r-7", sha), []string{"r-7"}},
		{"short commit", []string{"sha-{{.Commit.Short}}"}, tagData("r-7", sha), []string{"sha-0123456"}},
		{"full commit and task", []string{"{{.Task.Name}}-{{.Commit.SHA}}"}, tagData("r-7", sha), []string{"api-" + sha}},
		{"plain", []string{"latest", "stable"}, tagData("r-7", ""), []string{"latest", "stable"}},
		{"dedupe keeps first order", []string{"latest", "{{.Run.ID}}", "latest", "r-{{printf \"%d\" 7}}"}, tagData("r-7", ""), []string{"latest", "r-7"}},
		{"none", nil, tagData("r-7", ""), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := task.RenderTags(tt.templates, tt.data)
			if err != nil {
				t.Fatalf("RenderTags(%q) error: %v", tt.templates, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("RenderTags(%q) mismatch (-want +got):\n%s", tt.templates, diff)
			}
		})
	}
}

func TestRenderTagsErrors(t *testing.T) {
	tests := []struct {
		name     string
		template string
		data     task.TagData
	}{
		{"empty commit", "{{.Commit.Short}}", tagData("r-1", "")},
		{"leading dash", "-{{.Commit.Short}}", tagData("r-1", "0123456789")},
		{"unknown field", "{{.Nope}}", tagData("r-1", "")},
		{"parse error", "{{.Run.ID", tagData("r-1", "")},
		{"too long", strings.Repeat("x", 120) + "{{.Commit.SHA}}", tagData("r-1", strings.Repeat("a", 40))},
		{"invalid char", "{{.Run.ID}}:x", tagData("r-1", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := task.RenderTags([]string{"latest", tt.template}, tt.data)
			if err == nil {
				t.Fatalf("RenderTags(%q) = %q, want an error", tt.template, got)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.template)) {
				t.Errorf("RenderTags(%q) error %q does not name the template", tt.template, err)
			}
		})
	}
}

func TestRepository(t *testing.T) {
	const emb = "127.0.0.1:5555"
	tests := []struct {
		name, image, want string
	}{
		{"api", "", emb + "/api"},
		{"api", "api", emb + "/api"},
		{"api", "team/api", emb + "/team/api"},
		{"api", "library/x/y", emb + "/library/x/y"},
		{"api", "localhost:5000/x", "localhost:5000/x"},
		{"api", "localhost/x", "localhost/x"},
		{"api", "registry.example/x", "registry.example/x"},
		{"api", "registry.example:443/team/x", "registry.example:443/team/x"},
		{"api", "ghcr.io/org/x", "ghcr.io/org/x"},
	}
	for _, tt := range tests {
		got := task.Spec{Name: tt.name, Image: tt.image}.Repository(emb)
		if got != tt.want {
			t.Errorf("Spec{Name: %q, Image: %q}.Repository(%q) = %q, want %q", tt.name, tt.image, emb, got, tt.want)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	in := `{"name":"api","source":{"git":"https://example.com/api.git","ref":"main"},
		"buildArgs":{"A":"1"},"platforms":["linux/amd64"],"tags":["{{.Run.ID}}"],
		"triggers":{"commit":true,"base":false,"manual":true,"baseScope":"all"}}`
	got, err := task.DecodeJSON(strings.NewReader(in))
	if err != nil {
		t.Fatalf("DecodeJSON error: %v", err)
	}
	want := task.Spec{
		Name:      "api",
		Source:    task.Source{Git: "https://example.com/api.git", Ref: "main"},
		BuildArgs: map[string]string{"A": "1"},
		Platforms: []string{"linux/amd64"},
		Tags:      []string{"{{.Run.ID}}"},
		Triggers:  &task.Triggers{Commit: task.CommitOn(), Manual: true, BaseScope: "all"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeJSON mismatch (-want +got):\n%s", diff)
	}
	if _, err := task.DecodeJSON(strings.NewReader(in + "\n\t ")); err != nil {
		t.Errorf("DecodeJSON with trailing whitespace error: %v", err)
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown top-level field", `{"name":"api","colour":"red"}`, `"colour"`},
		{"unknown nested field", `{"name":"api","source":{"gti":"x"}}`, `"gti"`},
		{"unknown trigger field", `{"name":"api","triggers":{"cron":"x"}}`, `"cron"`},
		{"wrong type", `{"name":1}`, "name"},
		{"empty", ``, "EOF"},
		{"not an object", `[]`, "cannot unmarshal"},
		{"second object", `{"name":"a"} {"name":"b"}`, "after the task"},
		{"trailing garbage", `{"name":"a"} x`, "after the task"},
		{"over the limit", `{"name":"` + strings.Repeat("a", task.MaxSpecBytes) + `"}`, fmt.Sprintf("more than the %d bytes allowed", task.MaxSpecBytes)},
		{"spaces past the limit", `{"name":"a"}` + strings.Repeat(" ", task.MaxSpecBytes), fmt.Sprintf("more than the %d bytes allowed", task.MaxSpecBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := task.DecodeJSON(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("DecodeJSON(%s) = %+v, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DecodeJSON(%s) error %q, want it to contain %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestDecodeYAML(t *testing.T) {
	gitSrc := task.Source{Git: "https://example.com/a.git"}
	tests := []struct {
		name string
		in   string
		want []task.Spec
	}{
		{
			name: "single document",
			in:   "name: a\nsource:\n  git: https://example.com/a.git\n",
			want: []task.Spec{{Name: "a", Source: gitSrc}},
		},
		{
			name: "multiple documents",
			in: `name: a
source: {git: "https://example.com/a.git"}
---
name: b
source:
  dir: /src/b
tags: ["{{.Run.ID}}", latest]
---
name: c
source: {dir: /src/c}
buildArgs: {X: "1"}
`,
			want: []task.Spec{
				{Name: "a", Source: gitSrc},
				{Name: "b", Source: task.Source{Dir: "/src/b"}, Tags: []string{"{{.Run.ID}}", "latest"}},
				{Name: "c", Source: task.Source{Dir: "/src/c"}, BuildArgs: map[string]string{"X": "1"}},
			},
		},
		{
			name: "leading separator, empty documents and CRLF",
			in:   "---\r\nname: a\r\nsource: {git: \"https://example.com/a.git\"}\r\n---\r\n---   \r\nname: b\r\nsource: {dir: /b}\r\n",
			want: []task.Spec{{Name: "a", Source: gitSrc}, {Name: "b", Source: task.Source{Dir: "/b"}}},
		},
		{
			name: "tasks list",
			in: `tasks:
  - name: a
    source: {git: "https://example.com/a.git"}
  - name: b
    source: {dir: /b}
    triggers: {manual: true, patch: rebase}
`,
			want: []task.Spec{
				{Name: "a", Source: gitSrc},
				{Name: "b", Source: task.Source{Dir: "/b"}, Triggers: &task.Triggers{Manual: true, Patch: "rebase"}},
			},
		},
		{
			name: "comments before tasks list, then another document",
			in: `# refit tasks
  # indented comment
tasks:
  # the first one
  - name: a # trailing comment
    source: {git: "https://example.com/a.git"}
---
# a lone task
name: b
source: {dir: /b}
`,
			want: []task.Spec{{Name: "a", Source: gitSrc}, {Name: "b", Source: task.Source{Dir: "/b"}}},
		},
		{
			name: "comment-only documents are skipped",
			in:   "# header\n---\nname: a\nsource: {git: \"https://example.com/a.git\"}\n---\n# trailer\n  # more\n",
			want: []task.Spec{{Name: "a", Source: gitSrc}},
		},
		{
			name: "dash inside a string is not a separator",
			in:   "name: a\nsource: {git: \"https://example.com/a.git\"}\ntags:\n  - \"---\"\n",
			want: []task.Spec{{Name: "a", Source: gitSrc, Tags: []string{"---"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := task.DecodeYAML([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeYAML error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeYAML mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeYAMLErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{
			name: "unknown field in second document",
			in:   "name: a\nsource: {dir: /a}\n---\nname: b\nsorce: {dir: /b}\n",
			want: []string{"document 2", `"sorce"`},
		},
		{
			name: "document numbers skip a leading separator and comment-only documents",
			in:   "# header\n---\nname: a\nsource: {dir: /a}\n---\n# nothing\n---\nname: b\nbogus: 1\n",
			want: []string{"document 2", `"bogus"`},
		},
		{
			name: "unknown field in tasks list",
			in:   "tasks:\n  - name: a\n    source: {dir: /a}\n    colour: red\n",
			want: []string{"document 1", `"colour"`},
		},
		{
			name: "unknown top-level key next to tasks",
			in:   "tasks: []\nversion: 1\n",
			want: []string{"document 1", `"version"`},
		},
		{
			name: "unknown nested field",
			in:   "name: a\nsource: {dir: /a}\ntriggers: {cron: daily}\n",
			want: []string{"document 1", `"cron"`},
		},
		{
			name: "duplicate key",
			in:   "name: a\nname: b\nsource: {dir: /a}\n",
			want: []string{"document 1", "name"},
		},
		{
			name: "syntax error",
			in:   "name: [a\n",
			want: []string{"document 1"},
		},
		{
			name: "every bad document is reported",
			in:   "name: a\ncolour: red\n---\nname: b\nsource: {dir: /b}\n---\nname: c\nsorce: {dir: /c}\n",
			want: []string{"document 1", `"colour"`, "document 3", `"sorce"`},
		},
		{name: "empty", in: "", want: []string{"no tasks"}},
		{name: "only whitespace and separators", in: "\n---\n  \n---\n", want: []string{"no tasks"}},
		{name: "only comments", in: "# nothing here\n---\n# nor here\n", want: []string{"no tasks"}},
		{name: "empty tasks list", in: "tasks: []\n", want: []string{"no tasks"}},
		{
			name: "oversized",
			in:   "name: a\nsource: {dir: /a}\n# " + strings.Repeat("x", task.MaxFileBytes) + "\n",
			want: []string{"bytes", fmt.Sprint(task.MaxFileBytes)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := task.DecodeYAML([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeYAML = %+v, want an error", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("DecodeYAML error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func FuzzDecodeYAML(f *testing.F) {
	for _, s := range []string{
		"",
		"---",
		"name: a\nsource: {git: x}\n",
		"name: a\n---\nname: b\n",
		"tasks:\n  - name: a\n  - name: b\n",
		"# c\ntasks: []\n",
		"tasks: 3",
		"a: &x [*x]\n",
		"name: [a\n",
		"- 1\n- 2\n",
		"{\"name\": \"a\", \"tags\": [\"{{.Run.ID}}\"]}",
		"name: a\nsource: {dir: /x}\ntest: {target: t, command: [sh]}\npromote: {tags: [stable], policy: approval, approvers: {count: 2}, requireApprovalFor: [base]}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := task.DecodeYAML(data)
		if err == nil && len(specs) == 0 {
			t.Errorf("DecodeYAML(%q) = no specs and no error", data)
		}
		for _, s := range specs {
			// Must not panic either.
			_ = s.Validate()
			_ = s.Defaults().Validate()
			_ = s.Repository("localhost:5000")
		}
	})
}

// TestDecodeYAMLFleet: a file of 10,000 tasks (well over the 1 MiB a
// single task may have) decodes, every task in order.
func TestDecodeYAMLFleet(t *testing.T) {
	var b strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&b, "name: t%05d\nsource: {dir: /src/fleet}\ncontext: c%04d\nimage: fleet/t%05d\ntags: [latest, \"{{.Run.ID}}\"]\n---\n", i, i%2000, i)
	}
	if b.Len() <= task.MaxSpecBytes {
		t.Fatalf("file is %d bytes; the test wants one over %d", b.Len(), task.MaxSpecBytes)
	}
	specs, err := task.DecodeYAML([]byte(b.String()))
	if err != nil {
		t.Fatalf("DecodeYAML of 10,000 tasks (%d bytes): %v", b.Len(), err)
	}
	if len(specs) != 10000 || specs[9999].Name != "t09999" || specs[1].Context != "c0001" {
		t.Errorf("DecodeYAML gave %d tasks, want 10,000 in order", len(specs))
	}
}

// TestSpecHash: the hash is the same for a spec with or without its
// defaults written out, and differs when a field or the revision does.
func TestSpecHash(t *testing.T) {
	base := task.Spec{Name: "api", Source: task.Source{Dir: "/src"}, BuildArgs: map[string]string{"A": "1", "B": "2"}}
	h := base.Hash("r1")
	if got := base.Defaults().Hash("r1"); got != h {
		t.Errorf("hash of the defaulted spec %s, want %s (defaults are part of the spec)", got, h)
	}
	changed := base
	changed.BuildArgs = map[string]string{"A": "1", "B": "3"}
	other := base
	other.Tags = []string{"v1"}
	for name, got := range map[string]string{
		"build arg changed": changed.Hash("r1"),
		"tags changed":      other.Hash("r1"),
		"revision changed":  base.Hash("r2"),
		"no revision":       base.Hash(""),
	} {
		if got == h {
			t.Errorf("%s: hash %s is the same as before", name, got)
		}
	}
}

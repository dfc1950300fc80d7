package task

import (
	"errors"
	"strings"
	"testing"
)

func TestBaseTagsValidate(t *testing.T) {
	base := func(bt ...BaseTag) Spec {
		return Spec{Name: "py", Source: Source{Dir: "/src"}, Triggers: &Triggers{Base: true, BaseTags: bt}}
	}
	ok := BaseTag{Ref: "docker.io/library/python", Arg: "PYTHON_TAG", Semver: "~3.12", Action: "rebuild"}
	if err := base(ok, BaseTag{Ref: "alpine", Semver: ">=3.19", Action: "notify"}).Validate(); err != nil {
		t.Fatalf("valid baseTags refused: %v", err)
	}
	for _, tc := range []struct {
		bt    BaseTag
		field string
		want  string
	}{
		{BaseTag{Ref: "python:3.12", Arg: "A", Semver: "~3.12"}, "triggers.baseTags[0].ref", "without a tag"},
		{BaseTag{Ref: "Python", Arg: "A", Semver: "~3.12"}, "triggers.baseTags[0].ref", "lowercase"},
		{BaseTag{Ref: "python", Arg: "A", Semver: "~three"}, "triggers.baseTags[0].semver", "not a semver constraint"},
		{BaseTag{Ref: "python", Arg: "A"}, "triggers.baseTags[0].semver", "required"},
		{BaseTag{Ref: "python", Arg: "1A", Semver: "~3"}, "triggers.baseTags[0].arg", "not a valid build argument name"},
		{BaseTag{Ref: "python", Semver: "~3"}, "triggers.baseTags[0].arg", "required"},
		{BaseTag{Ref: "python", Arg: "A", Semver: "~3", Action: "deploy"}, "triggers.baseTags[0].action", "rebuild or notify"},
	} {
		err := base(tc.bt).Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.want) {
			t.Errorf("%+v: err = %v, want %s: …%s…", tc.bt, err, tc.field, tc.want)
		}
	}
	if err := base(ok, ok).Validate(); err == nil || !strings.Contains(err.Error(), "triggers.baseTags[1].arg") {
		t.Errorf("two entries setting one arg: err = %v", err)
	}
	// A spec without baseTags hashes as before: the field is omitted.
	if h := base().Hash(""); h != (Spec{Name: "py", Source: Source{Dir: "/src"}, Triggers: &Triggers{Base: true}}).Hash("") {
		t.Error("an empty baseTags changed the spec's hash")
	}
}

func TestTagRule(t *testing.T) {
	r, err := NewTagRule("~3.12", false)
	if err != nil {
		t.Fatal(err)
	}
	for tag, want := range map[string]bool{"3.12.8": true, "3.12.9": true, "3.12": true, "3.13.0": false,
		"3.12.10-rc1": false, "3.12.9-slim": false, "latest": false, "bookworm": false} {
		if _, got := r.Match(tag); got != want {
			t.Errorf("~3.12 matches %q = %v, want %v", tag, got, want)
		}
	}
	pre, _ := NewTagRule("~3.12", true)
	if _, ok := pre.Match("3.12.10-rc1"); !ok {
		t.Error("~3.12 with prerelease does not match 3.12.10-rc1")
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{{"3.12.9", "3.12.8", true}, {"3.12.10", "3.12.9", true}, {"3.12.8", "3.12.9", false}, {"3.12.0", "3.12", true},
		{"3.12", "3.12.0", false}, {"3.12.9", "", true}, {"latest", "3.12.9", false}} {
		if got := Newer(c.a, c.b); got != c.want {
			t.Errorf("Newer(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestTagArgs(t *testing.T) {
	s := Spec{BuildArgs: map[string]string{"PYTHON_TAG": "3.12.8", "X": "1"}, Triggers: &Triggers{BaseTags: []BaseTag{
		{Ref: "python", Arg: "PYTHON_TAG", Semver: "~3.12"}, {Ref: "node", Arg: "NODE_TAG", Semver: "^20", Action: "notify"}}}}
	got := s.TagArgs(map[string]string{"PYTHON_TAG": "3.12.9", "NODE_TAG": "20.1.0", "GONE": "1"})
	if got.BuildArgs["PYTHON_TAG"] != "3.12.9" || got.BuildArgs["X"] != "1" || got.BuildArgs["NODE_TAG"] != "" || got.BuildArgs["GONE"] != "" {
		t.Errorf("TagArgs = %v; want PYTHON_TAG=3.12.9, X kept, notify and unknown args ignored", got.BuildArgs)
	}
	if s.BuildArgs["PYTHON_TAG"] != "3.12.8" {
		t.Error("TagArgs changed the spec it was called on")
	}
}

func TestDecodeFileWatches(t *testing.T) {
	f, err := DecodeFile([]byte("watches:\n  - ref: python:3.12\n  - {ref: docker.io/library/node, semver: \"^20\"}\n---\nname: a\nsource: {dir: /x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tasks) != 1 || len(f.Watches) != 2 || f.Watches[1].Semver != "^20" {
		t.Fatalf("DecodeFile = %+v", f)
	}
	w, err := f.Watches[0].Check()
	if err != nil || w.Ref != "docker.io/library/python:3.12" || !w.ByDigest || w.Repository != "docker.io/library/python" {
		t.Errorf("Check(python:3.12) = %+v, %v", w, err)
	}
	w, err = f.Watches[1].Check()
	if err != nil || w.Ref != "docker.io/library/node" || w.ByDigest {
		t.Errorf("Check(node, ^20) = %+v, %v", w, err)
	}
	if _, err := DecodeYAML([]byte("watches:\n  - ref: python\n")); err == nil || !strings.Contains(err.Error(), "no tasks") {
		t.Errorf("DecodeYAML of watches only: err = %v", err)
	}
	if _, err := DecodeFile([]byte("watches:\n  - ref: python\n    every: 1m\n")); err == nil {
		t.Error("an unknown watch field was accepted")
	}
}

package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
)

// CommitTrigger says which pushes to a task's git source start a run. On
// the wire it is either a boolean — true meaning "pushes to the source's
// ref", as before filters existed — or an object naming filters, which
// enables the trigger:
//
//	commit: {branches: [main, "release/*"], paths: ["services/api/**"], tags: false, deletions: false}
//
// A trigger without filters encodes as the boolean, so a task written
// before filters existed keeps its spec hash.
type CommitTrigger struct {
	// Enabled is true when pushes start runs at all. It is not written on
	// the wire: true or an object mean enabled, false disabled.
	Enabled bool `json:"-"`
	// Branches are glob patterns (path.Match syntax, "**" matching any
	// number of path elements) of the branch names that start runs, e.g.
	// "main", "release/*". Empty means the source's ref only (its default
	// branch when the ref is HEAD).
	Branches []string `json:"branches,omitempty"`
	// Paths are glob patterns of file paths, relative to the repository
	// root; a push that changes no file under them starts no run. Empty
	// means every path.
	Paths []string `json:"paths,omitempty"`
	// Tags makes pushed tags start runs (at the tagged commit). Default
	// false.
	Tags bool `json:"tags,omitempty"`
	// Deletions makes a deleted branch start a run of the source's ref.
	// Default false.
	Deletions bool `json:"deletions,omitempty"`
}

// CommitOn is an enabled commit trigger without filters (what `commit:
// true` means).
func CommitOn() CommitTrigger { return CommitTrigger{Enabled: true} }

// filtered reports whether any filter is set.
func (c CommitTrigger) filtered() bool {
	return len(c.Branches) > 0 || len(c.Paths) > 0 || c.Tags || c.Deletions
}

// commitFields is CommitTrigger's object form.
type commitFields struct {
	Branches  []string `json:"branches,omitempty"`
	Paths     []string `json:"paths,omitempty"`
	Tags      bool     `json:"tags,omitempty"`
	Deletions bool     `json:"deletions,omitempty"`
}

// MarshalJSON writes false, true, or the object of filters.
func (c CommitTrigger) MarshalJSON() ([]byte, error) {
	if !c.Enabled || !c.filtered() {
		return json.Marshal(c.Enabled)
	}
	return json.Marshal(commitFields{c.Branches, c.Paths, c.Tags, c.Deletions})
}

// UnmarshalJSON reads a boolean or an object of filters (unknown fields
// are errors; an object enables the trigger).
func (c *CommitTrigger) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*c = CommitTrigger{}
		return nil
	case len(b) > 0 && b[0] == '{':
		var f commitFields
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return fmt.Errorf("triggers.commit: %w (want true, false or {branches, paths, tags, deletions})", err)
		}
		*c = CommitTrigger{Enabled: true, Branches: f.Branches, Paths: f.Paths, Tags: f.Tags, Deletions: f.Deletions}
		return nil
	}
	var on bool
	if err := json.Unmarshal(b, &on); err != nil {
		return errors.New("triggers.commit: want true, false or {branches, paths, tags, deletions}")
	}
	*c = CommitTrigger{Enabled: on}
	return nil
}

// validate checks the globs; field is the trigger's field name.
func (c CommitTrigger) validate() error {
	for i, b := range c.Branches {
		f := fmt.Sprintf("triggers.commit.branches[%d]", i)
		if err := checkGlob(strings.TrimPrefix(b, "refs/heads/")); err != nil {
			return &FieldError{f, fmt.Sprintf("%q: %v", b, err)}
		}
	}
	for i, p := range c.Paths {
		f := fmt.Sprintf("triggers.commit.paths[%d]", i)
		if err := checkGlob(p); err != nil {
			return &FieldError{f, fmt.Sprintf("%q: %v", p, err)}
		}
		if path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
			return &FieldError{f, fmt.Sprintf("%q must be relative to the repository root", p)}
		}
	}
	return nil
}

// checkGlob refuses an empty, overlong or malformed pattern.
func checkGlob(g string) error {
	switch {
	case g == "":
		return errors.New("empty pattern")
	case len(g) > 1024:
		return errors.New("pattern longer than 1024 bytes")
	case strings.ContainsAny(g, "\x00\n\r"):
		return errors.New("pattern holds a control character")
	}
	for _, part := range strings.Split(g, "/") {
		if part == "**" {
			continue
		}
		if _, err := path.Match(part, ""); err != nil {
			return fmt.Errorf("not a glob pattern: %w", err)
		}
	}
	return nil
}

// MatchGlob reports whether name (a branch name or a slash-separated file
// path) matches pattern: path.Match per element, where an element "**"
// matches any number of elements (none included), and a pattern naming a
// directory ("services/api") also matches everything under it.
func MatchGlob(pattern, name string) bool {
	p := strings.Split(strings.Trim(pattern, "/"), "/")
	n := strings.Split(strings.Trim(name, "/"), "/")
	return matchParts(p, n, 0)
}

func matchParts(p, n []string, depth int) bool {
	if depth > 64 { // bounds the "**" backtracking on hostile patterns
		return false
	}
	for len(p) > 0 {
		if p[0] == "**" {
			rest := p[1:]
			if len(rest) == 0 {
				return true
			}
			for i := 0; i <= len(n); i++ {
				if matchParts(rest, n[i:], depth+1) {
					return true
				}
			}
			return false
		}
		if len(n) == 0 {
			return false
		}
		if ok, _ := path.Match(p[0], n[0]); !ok {
			return false
		}
		p, n = p[1:], n[1:]
	}
	// Pattern used up: an exact match, or a directory prefix of name.
	return true
}

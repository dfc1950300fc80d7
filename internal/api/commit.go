package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// CommitTrigger says which pushes start a run: the boolean true (pushes
// to the source's ref) or false, or an object of filters, which enables
// the trigger. It mirrors task.CommitTrigger, and encodes the same way.
type CommitTrigger struct {
	Enabled   bool     `json:"-"`                   // true, or an object
	Branches  []string `json:"branches,omitempty"`  // globs of branch names; default the source's ref
	Paths     []string `json:"paths,omitempty"`     // globs of changed files; default any
	Tags      bool     `json:"tags,omitempty"`      // pushed tags build
	Deletions bool     `json:"deletions,omitempty"` // deleted branches build the source's ref
}

// commitFields is CommitTrigger's object form.
type commitFields struct {
	Branches  []string `json:"branches,omitempty"`
	Paths     []string `json:"paths,omitempty"`
	Tags      bool     `json:"tags,omitempty"`
	Deletions bool     `json:"deletions,omitempty"`
}

// MarshalJSON writes false, true (no filters), or the object of filters.
func (c CommitTrigger) MarshalJSON() ([]byte, error) {
	if !c.Enabled || len(c.Branches) == 0 && len(c.Paths) == 0 && !c.Tags && !c.Deletions {
		return json.Marshal(c.Enabled)
	}
	return json.Marshal(commitFields{c.Branches, c.Paths, c.Tags, c.Deletions})
}

// UnmarshalJSON reads a boolean or an object (unknown fields are errors).
func (c *CommitTrigger) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var f commitFields
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return fmt.Errorf("triggers.commit: %w", err)
		}
		*c = CommitTrigger{Enabled: true, Branches: f.Branches, Paths: f.Paths, Tags: f.Tags, Deletions: f.Deletions}
		return nil
	}
	var on bool
	if !bytes.Equal(b, []byte("null")) {
		if err := json.Unmarshal(b, &on); err != nil {
			return fmt.Errorf("triggers.commit: want true, false or an object: %w", err)
		}
	}
	*c = CommitTrigger{Enabled: on}
	return nil
}

// String describes the trigger the way `refit task` shows it.
func (c CommitTrigger) String() string {
	if !c.Enabled {
		return "false"
	}
	s := "true"
	if len(c.Branches) > 0 {
		s += " branches=" + strings.Join(c.Branches, ",")
	}
	if len(c.Paths) > 0 {
		s += " paths=" + strings.Join(c.Paths, ",")
	}
	if c.Tags {
		s += " tags"
	}
	if c.Deletions {
		s += " deletions"
	}
	return s
}

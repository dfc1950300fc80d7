package task

import (
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/distribution/reference"
)

// BaseTag follows the version tags of a base repository
// (triggers.baseTags): a new tag matching Semver rebuilds the task with
// Arg set to it (Action "rebuild", the default) or only emits a
// base.tagged event (Action "notify").
type BaseTag struct {
	// Ref is the repository as the Dockerfile names it through Arg,
	// without tag or digest ("docker.io/library/python", "python").
	Ref string `json:"ref"`
	// Arg is the build argument that carries the tag (used in a FROM).
	// Required for rebuild.
	Arg string `json:"arg,omitempty"`
	// Semver is the constraint new tags must meet ("~3.12", ">=1.25 <2"),
	// read by github.com/Masterminds/semver/v3. Required.
	Semver string `json:"semver"`
	// Prerelease counts tags with a pre-release part ("3.13.0-rc1", and
	// so suffixed tags like "3.12.9-slim") as versions. Default false.
	Prerelease bool `json:"prerelease,omitempty"`
	// Action is "rebuild" (default) or "notify".
	Action string `json:"action,omitempty"`
}

// MaxBaseTags bounds a task's triggers.baseTags entries.
const MaxBaseTags = 16

// validateBaseTags checks triggers.baseTags.
func validateBaseTags(bts []BaseTag) error {
	if len(bts) > MaxBaseTags {
		return &FieldError{"triggers.baseTags", fmt.Sprintf("%d entries, at most %d", len(bts), MaxBaseTags)}
	}
	args := map[string]bool{}
	for i, bt := range bts {
		field := fmt.Sprintf("triggers.baseTags[%d]", i)
		if _, err := Repository(bt.Ref); err != nil {
			return &FieldError{field + ".ref", err.Error()}
		}
		if _, err := NewTagRule(bt.Semver, bt.Prerelease); err != nil {
			return &FieldError{field + ".semver", err.Error()}
		}
		switch bt.Action {
		case "", "rebuild":
			if bt.Arg == "" {
				return &FieldError{field + ".arg", "required: the build argument that carries the tag (with action notify it may be left out)"}
			}
		case "notify":
		default:
			return &FieldError{field + ".action", fmt.Sprintf("%q must be rebuild or notify", bt.Action)}
		}
		if bt.Arg != "" {
			if !argRE.MatchString(bt.Arg) {
				return &FieldError{field + ".arg", fmt.Sprintf("%q is not a valid build argument name", bt.Arg)}
			}
			if args[bt.Arg] {
				return &FieldError{field + ".arg", fmt.Sprintf("%q is set by another baseTags entry", bt.Arg)}
			}
			args[bt.Arg] = true
		}
	}
	return nil
}

// Repository normalizes a repository reference the way Docker reads
// it ("python" is "docker.io/library/python"); a tag or digest is an
// error.
func Repository(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("a repository is required (like docker.io/library/python)")
	}
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("%q: %v", ref, err)
	}
	if _, ok := n.(reference.Tagged); ok {
		return "", fmt.Errorf("%q must be a repository without a tag (the tags are what is followed)", ref)
	}
	if _, ok := n.(reference.Digested); ok {
		return "", fmt.Errorf("%q must be a repository without a digest", ref)
	}
	return n.Name(), nil
}

// TagRule is a parsed semver constraint over tags. It is safe for
// concurrent use.
type TagRule struct {
	key string
	c   *semver.Constraints
}

// NewTagRule parses constraint (Masterminds/semver syntax); prerelease
// says whether tags with a pre-release part may match.
func NewTagRule(constraint string, prerelease bool) (*TagRule, error) {
	if strings.TrimSpace(constraint) == "" {
		return nil, fmt.Errorf("a semver constraint is required (like \"~3.12\")")
	}
	if len(constraint) > 256 {
		return nil, fmt.Errorf("constraint is %d bytes, at most 256", len(constraint))
	}
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return nil, fmt.Errorf("%q is not a semver constraint: %v", constraint, err)
	}
	c.IncludePrerelease = prerelease
	return &TagRule{key: RuleKey(constraint, prerelease), c: c}, nil
}

// RuleKey names a constraint and its pre-release setting: how the index
// keys the newest tag it saw for it ("~3.12", "~3.12 +prerelease").
func RuleKey(constraint string, prerelease bool) string {
	if prerelease {
		return constraint + " +prerelease"
	}
	return constraint
}

// SplitRuleKey splits a RuleKey into its constraint and pre-release
// setting.
func SplitRuleKey(key string) (constraint string, prerelease bool) {
	return strings.CutSuffix(key, " +prerelease")
}

// ParseRuleKey is NewTagRule of a RuleKey.
func ParseRuleKey(key string) (*TagRule, error) {
	return NewTagRule(SplitRuleKey(key))
}

// Key returns the rule's RuleKey.
func (r *TagRule) Key() string { return r.key }

// Match returns the version tag stands for when it meets the rule.
// Tags that are no version ("latest", "bookworm") never match.
func (r *TagRule) Match(tag string) (*semver.Version, bool) {
	v, err := semver.NewVersion(tag)
	if err != nil || !r.c.Check(v) {
		return nil, false
	}
	return v, true
}

// Newer reports whether tag a is a newer version than tag b: by semver,
// and between two tags of one version ("3.12" and "3.12.0") the one
// written in full. A tag that is no version is never newer; any version
// is newer than "".
func Newer(a, b string) bool {
	va, err := semver.NewVersion(a)
	if err != nil {
		return false
	}
	vb, err := semver.NewVersion(b)
	if err != nil {
		return true
	}
	switch va.Compare(vb) {
	case 1:
		return true
	case 0:
		return a == va.String() && b != vb.String()
	}
	return false
}

// TagArgs returns s with the build arguments baseTags set (args: arg →
// the newest tag seen) applied: only those of an entry with action
// rebuild, so an entry removed from the spec stops overriding its
// argument.
func (s Spec) TagArgs(args map[string]string) Spec {
	if len(args) == 0 || s.Triggers == nil {
		return s
	}
	var out map[string]string
	for _, bt := range s.Triggers.BaseTags {
		v, ok := args[bt.Arg]
		if !ok || bt.Arg == "" || (bt.Action != "" && bt.Action != "rebuild") {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(s.BuildArgs)+1)
			for k, v := range s.BuildArgs {
				out[k] = v
			}
		}
		out[bt.Arg] = v
	}
	if out != nil {
		s.BuildArgs = out
	}
	return s
}

// WatchSpec is a reference to watch without building, as `refit watch
// add` and a task file's top-level `watches:` list give it.
type WatchSpec struct {
	// Ref is an image reference as Docker reads it. With a tag (or
	// none and no Semver: ":latest") its digest is watched; a repository
	// without tag and with Semver watches only its tags.
	Ref string `json:"ref"`
	// Semver, when set, follows the repository's new tags matching it.
	Semver string `json:"semver,omitempty"`
	// Prerelease counts pre-release (and suffixed) tags.
	Prerelease bool `json:"prerelease,omitempty"`
}

// Watch is a checked WatchSpec: what the index watches for it.
type Watch struct {
	Ref        string // normalized reference, or the repository when !ByDigest
	Repository string // Ref's repository
	ByDigest   bool   // Ref's digest is polled
	Semver     string
	Prerelease bool
}

// Check normalizes w and checks its fields, returning a *FieldError
// naming the bad one.
func (w WatchSpec) Check() (Watch, error) {
	if w.Ref == "" {
		return Watch{}, &FieldError{"ref", "required (like docker.io/library/python:3.12)"}
	}
	n, err := reference.ParseNormalizedNamed(w.Ref)
	if err != nil {
		return Watch{}, &FieldError{"ref", fmt.Sprintf("%q: %v", w.Ref, err)}
	}
	if _, ok := n.(reference.Digested); ok {
		return Watch{}, &FieldError{"ref", fmt.Sprintf("%q is pinned by digest: it cannot move", w.Ref)}
	}
	out := Watch{Repository: n.Name(), Semver: w.Semver, Prerelease: w.Prerelease}
	if w.Semver != "" {
		if _, err := NewTagRule(w.Semver, w.Prerelease); err != nil {
			return Watch{}, &FieldError{"semver", err.Error()}
		}
	} else if w.Prerelease {
		return Watch{}, &FieldError{"prerelease", "needs semver"}
	}
	_, tagged := n.(reference.Tagged)
	switch {
	case tagged:
		out.Ref, out.ByDigest = reference.TagNameOnly(n).String(), true
	case w.Semver != "":
		out.Ref = n.Name()
	default:
		out.Ref, out.ByDigest = reference.TagNameOnly(n).String(), true
	}
	return out, nil
}

// TagVersion returns the version a tag stands for; false for a tag that
// is no version ("latest").
func TagVersion(tag string) (*semver.Version, bool) {
	v, err := semver.NewVersion(tag)
	return v, err == nil
}

// Allows reports whether version v (of TagVersion) meets the rule.
func (r *TagRule) Allows(v *semver.Version) bool { return r.c.Check(v) }

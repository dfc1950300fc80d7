// Package dockerfile owns parsing Dockerfiles to find the base images they
// build on: the FROM images of every stage, and the images named by
// COPY --from and RUN --mount=from=. It uses BuildKit's own parser,
// instruction decoder and shell lexer so that stage lookups, ARG expansion
// and reference normalization match what BuildKit does.
//
// It does not resolve digests or contact registries.
package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// MaxSize is the largest Dockerfile, in bytes, that Parse accepts.
const MaxSize = 1 << 20

// scratchName is the reserved FROM name for an empty base.
const scratchName = "scratch"

// Role says whether a base ends up in the final image.
type Role string

const (
	// RoleRuntime marks the FROM image of the root ancestor of the target
	// stage: its layers are part of the built image.
	RoleRuntime Role = "runtime"
	// RoleBuild marks every other base: it is used only while building.
	RoleBuild Role = "build"
)

// Kind says how a base reference is used.
type Kind string

const (
	// KindFrom is an image named by FROM.
	KindFrom Kind = "from"
	// KindCopy is an image named by COPY --from.
	KindCopy Kind = "copy-from"
	// KindMount is an image named by RUN --mount=...,from=.
	KindMount Kind = "mount-from"
)

// Base is one image reference a Dockerfile builds on.
type Base struct {
	// Stage is the stage the instruction belongs to: its name (AS x,
	// lower-cased as BuildKit does) or its index as a decimal string when
	// unnamed.
	Stage string `json:"stage"`
	// Role says whether the image ends up in the final image.
	Role Role `json:"role"`
	// Kind says which instruction uses the image.
	Kind Kind `json:"kind"`
	// Ref is the reference normalized as Docker does ("debian" becomes
	// "docker.io/library/debian:latest"). A digest is kept; when both a tag
	// and a digest are written, both are kept.
	Ref string `json:"ref"`
	// Name is the reference exactly as written, after ARG expansion.
	// ContextKey(Name) is the key BuildKit uses to look up a named context
	// (--build-context) replacing this image.
	Name string `json:"name"`
	// Platform is the FROM --platform value after ARG expansion, "" if
	// none. $BUILDPLATFORM, $TARGETPLATFORM and the other automatic platform
	// args are left literal (as "$NAME") unless Options.BuildArgs sets
	// them. Always "" for KindCopy and KindMount: BuildKit pulls those for
	// the default target platform.
	Platform string `json:"platform,omitempty"`
	// Line is the 1-based line of the instruction.
	Line int `json:"line"`
}

// Stage is one build stage (a FROM instruction and what follows it).
type Stage struct {
	// Name is as Base.Stage.
	Name string
	// Index is the 0-based position of the stage in the file.
	Index int
	// Base is what FROM names after ARG expansion: a normalized image
	// reference, "scratch", or the name of an earlier stage.
	Base string
	// Parent is the index of the earlier stage this one builds FROM, or -1
	// when it builds on an image or scratch.
	Parent int
	// Line is the 1-based line of the FROM instruction.
	Line int
}

// Options control how a Dockerfile is evaluated.
type Options struct {
	// BuildArgs override the defaults of global ARGs (those before the
	// first FROM), as BuildKit's --build-arg does. Arguments the Dockerfile
	// does not declare are ignored, except the automatic platform args
	// (BUILDPLATFORM, TARGETPLATFORM, TARGETOS, TARGETARCH, ...), which
	// BuildKit always defines.
	BuildArgs map[string]string
	// Target is the name of the stage to build (case-insensitive); ""
	// means the last stage.
	Target string
}

// Result is what Parse found in a Dockerfile.
type Result struct {
	// Syntax is the value of a `# syntax=` directive, "" if none.
	Syntax string
	// Stages lists every stage in file order.
	Stages []Stage
	// Target is the index in Stages of the stage being built.
	Target int
	// Bases lists the image references of all stages, in file order,
	// de-duplicated on (Ref, Stage, Kind). scratch is never a base.
	Bases []Base
}

// Error is a problem with a Dockerfile. Line is the 1-based line it concerns,
// or 0 when no single line is to blame (input too large, unknown target).
type Error struct {
	Line int
	Msg  string
	err  error
}

// Error returns "line N: msg", or just msg when Line is 0.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.err }

// newError builds an *Error whose message is format applied to args; when one
// of args is an error marked with %w it becomes the unwrapped error.
func newError(line int, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Line: line, Msg: bound(err.Error()), err: errors.Unwrap(err)}
}

// isAutomaticArg reports whether BuildKit sets key from the build and target
// platforms, which are unknown here (see dockerfile2llb defaultArgs).
// TARGETSTAGE is not one of them: it is known from Options.Target.
func isAutomaticArg(key string) bool {
	switch key {
	case "BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT",
		"TARGETPLATFORM", "TARGETOS", "TARGETOSVERSION", "TARGETARCH", "TARGETVARIANT":
		return true
	}
	return false
}

// automaticArgNames lists isAutomaticArg's keys in BuildKit's order.
func automaticArgNames() []string {
	return []string{
		"BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT",
		"TARGETPLATFORM", "TARGETOS", "TARGETOSVERSION", "TARGETARCH", "TARGETVARIANT",
	}
}

// placeholder is the value given to an automatic arg the caller did not
// supply: expansion leaves it literal, so "$BUILDPLATFORM" survives.
func placeholder(key string) string { return "$" + key }

// expandBudget caps the bytes of variable values one Parse may substitute, so
// that ARGs referring to themselves ("ARG A=$A$A" repeated) cannot grow
// without bound.
const expandBudget = 4 * MaxSize

// argEnv is an ordered variable set implementing shell.EnvGetter. Every value
// it hands out is charged to budget; once that runs out it reports empty
// values and sets over, and expand fails.
type argEnv struct {
	vals   map[string]string
	keys   []string
	budget int
	over   bool
}

func (e *argEnv) Get(key string) (string, bool) {
	v, ok := e.vals[key]
	if !ok {
		return "", false
	}
	if len(v) > e.budget {
		e.over = true
		return "", true
	}
	e.budget -= len(v)
	return v, true
}

// Keys lists the defined variables in definition order.
func (e *argEnv) Keys() []string { return e.keys }

// set defines or redefines key.
func (e *argEnv) set(key, val string) {
	if _, ok := e.vals[key]; !ok {
		e.keys = append(e.keys, key)
	}
	e.vals[key] = val
}

// expand substitutes variables in word as BuildKit's shell lexer does,
// except that ${VAR/pattern/replacement} is refused: it can multiply a
// value's length and nothing bounds it.
func (e *argEnv) expand(lex *shell.Lex, word string) (shell.ProcessWordResult, error) {
	if hasPatternSubst(word) {
		return shell.ProcessWordResult{}, fmt.Errorf("pattern substitution ${VAR/...} is not supported here: %s", quote(word))
	}
	res, err := lex.ProcessWordWithMatches(word, e)
	if err != nil {
		return res, err
	}
	if e.over {
		return res, fmt.Errorf("variable expansion exceeds %d bytes", expandBudget)
	}
	return res, nil
}

// hasPatternSubst reports whether word contains "${NAME/".
func hasPatternSubst(word string) bool {
	for i := 0; i+1 < len(word); i++ {
		if word[i] != '$' || word[i+1] != '{' {
			continue
		}
		j := i + 2
		for j < len(word) && (word[j] == '_' || 'a' <= word[j]|0x20 && word[j]|0x20 <= 'z' || '0' <= word[j] && word[j] <= '9') {
			j++
		}
		if j < len(word) && word[j] == '/' {
			return true
		}
	}
	return false
}

// Parse reads a Dockerfile (at most MaxSize bytes) and returns its stages and
// base images. Global ARGs are expanded into FROM names and --platform values
// using their defaults overridden by opts.BuildArgs. Problems with the
// Dockerfile are returned as *Error; read errors from r are wrapped.
func Parse(r io.Reader, opts Options) (*Result, error) {
	dt, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read dockerfile: %w", err)
	}
	if len(dt) > MaxSize {
		return nil, &Error{Msg: fmt.Sprintf("dockerfile is larger than %d bytes", MaxSize)}
	}

	res := &Result{}
	if syntax, _, _, ok := parser.DetectSyntax(dt); ok {
		res.Syntax = syntax
	}

	ast, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return nil, buildkitError(err)
	}
	// A non-nil linter without a Warn func reports nothing; a nil one
	// panics on `# check=` comments (Linter.WithMergedConfig).
	stages, metaArgs, err := instructions.Parse(ast.AST, linter.New(&linter.Config{}))
	if err != nil {
		return nil, buildkitError(err)
	}
	if len(stages) == 0 {
		return nil, &Error{Msg: "dockerfile has no FROM instruction: a Dockerfile starts with FROM (only ARG may come before it)"}
	}

	lex := shell.NewLex(ast.EscapeToken)
	env, err := globalArgs(lex, metaArgs, opts)
	if err != nil {
		return nil, err
	}

	// Stage names are lower-case (instructions.parseBuildStageName).
	// Like BuildKit's dispatchStates, a FROM sees the stages defined so far
	// (earlier), while --from, from= and the target see all of them, the
	// last one winning when a name is repeated.
	earlier := map[string]int{}
	all := map[string]int{}
	for i, st := range stages {
		if st.Name != "" {
			all[strings.ToLower(st.Name)] = i
		}
	}
	seen := map[baseKey]int{} // -> index in res.Bases
	add := func(b Base) int {
		k := baseKey{b.Ref, b.Stage, b.Kind}
		if j, ok := seen[k]; ok {
			return j
		}
		seen[k] = len(res.Bases)
		res.Bases = append(res.Bases, b)
		return len(res.Bases) - 1
	}
	fromBase := map[int]int{} // stage index -> index in res.Bases of its FROM image
	for i, st := range stages {
		s, base, err := evalStage(lex, env, i, st, earlier)
		if err != nil {
			return nil, err
		}
		res.Stages = append(res.Stages, s)
		if base != nil {
			fromBase[i] = add(*base)
		}
		if st.Name != "" {
			earlier[strings.ToLower(st.Name)] = i
		}
		for _, cmd := range st.Commands {
			bases, err := commandBases(lex, i, s.Name, cmd, len(stages), all)
			if err != nil {
				return nil, err
			}
			for _, b := range bases {
				add(b)
			}
		}
	}

	res.Target = len(res.Stages) - 1
	if opts.Target != "" {
		i, ok := all[strings.ToLower(opts.Target)]
		if !ok {
			return nil, &Error{Msg: fmt.Sprintf("target stage %s could not be found", quote(opts.Target))}
		}
		res.Target = i
	}

	root := res.Target
	for res.Stages[root].Parent >= 0 {
		root = res.Stages[root].Parent
	}
	if j, ok := fromBase[root]; ok {
		res.Bases[j].Role = RoleRuntime
	}
	return res, nil
}

// baseKey is what Result.Bases is de-duplicated on.
type baseKey struct {
	ref, stage string
	kind       Kind
}

// ContextKey returns the key BuildKit uses to look up a named build context
// (--build-context KEY=...) for an image reference as written: the familiar
// form of the normalized reference with a ":latest" tag dropped, so "debian",
// "debian:latest" and "docker.io/library/debian" all give "debian".
func ContextKey(name string) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("invalid context name %q: %w", name, err)
	}
	return strings.TrimSuffix(reference.FamiliarString(named), ":latest"), nil
}

// globalArgs computes the variables visible to FROM lines, as BuildKit's
// defaultArgs and buildMetaArgs do: automatic platform args (placeholders
// unless supplied), TARGETSTAGE, then the global ARGs in order, each
// overridden by a build arg of the same name.
func globalArgs(lex *shell.Lex, metaArgs []instructions.ArgCommand, opts Options) (*argEnv, error) {
	env := &argEnv{vals: map[string]string{}, budget: expandBudget}
	for _, k := range automaticArgNames() {
		v, ok := opts.BuildArgs[k]
		if !ok {
			v = placeholder(k)
		}
		env.set(k, v)
	}
	stage := opts.Target
	if stage == "" {
		stage = "default"
	}
	if v, ok := opts.BuildArgs["TARGETSTAGE"]; ok {
		stage = v
	}
	env.set("TARGETSTAGE", stage)

	for _, cmd := range metaArgs {
		for _, kv := range cmd.Args {
			if v, ok := opts.BuildArgs[kv.Key]; ok {
				env.set(kv.Key, v)
				continue
			}
			if kv.Value == nil {
				continue
			}
			v, err := env.expand(lex, *kv.Value)
			if err != nil {
				return nil, newError(firstLine(cmd.Location()), "expand ARG %s: %w", clip(kv.Key, maxQuote), err)
			}
			env.set(kv.Key, v.Result)
		}
	}
	return env, nil
}

// evalStage expands and classifies the FROM of stage i. It returns the Stage
// and, when FROM names an image, its Base (Role is set later).
func evalStage(lex *shell.Lex, env *argEnv, i int, st instructions.Stage, byName map[string]int) (Stage, *Base, error) {
	line := firstLine(st.Location)
	s := Stage{Name: st.Name, Index: i, Parent: -1, Line: line}
	if s.Name == "" {
		s.Name = strconv.Itoa(i)
	}

	name, err := expandFrom(lex, env, st.BaseName, line)
	if err != nil {
		return s, nil, err
	}
	if name == "" {
		return s, nil, newError(line, "base name (%s) should not be blank", clip(st.BaseName, maxQuote))
	}

	platform := ""
	if st.Platform != "" {
		p, err := env.expand(lex, st.Platform)
		if err != nil {
			return s, nil, newError(line, "expand FROM --platform: %w", err)
		}
		platform = p.Result
		if platform == "" {
			return s, nil, newError(line, "empty platform value from expression %s", clip(st.Platform, maxQuote))
		}
		if !strings.Contains(platform, "$") {
			if _, err := platforms.Parse(platform); err != nil {
				return s, nil, newError(line, "invalid FROM --platform %s: %w", quote(platform), err)
			}
		}
	}

	// BuildKit matches FROM against earlier stage names exactly, and those
	// names are already lower-cased; "FROM Builder" is an image (and an
	// invalid one).
	if p, ok := byName[name]; ok {
		s.Base = name
		s.Parent = p
		return s, nil, nil
	}
	if name == scratchName {
		s.Base = scratchName
		return s, nil, nil
	}
	ref, err := normalize(name)
	if err != nil {
		if _, ok := byName[strings.ToLower(name)]; ok {
			return s, nil, newError(line, "FROM %s: %w (FROM matches stage names exactly; write %s)", quote(name), err, quote(strings.ToLower(name)))
		}
		return s, nil, newError(line, "FROM %s: %w", quote(name), err)
	}
	s.Base = ref
	return s, &Base{
		Stage:    s.Name,
		Role:     RoleBuild,
		Kind:     KindFrom,
		Ref:      ref,
		Name:     name,
		Platform: platform,
		Line:     line,
	}, nil
}

// expandFrom expands global ARGs in a FROM name and rejects names that still
// depend on a variable (an automatic platform arg not given in BuildArgs, or
// an escaped $).
func expandFrom(lex *shell.Lex, env *argEnv, word string, line int) (string, error) {
	res, err := env.expand(lex, word)
	if err != nil {
		return "", newError(line, "expand FROM: %w", err)
	}
	// Placeholders arrive directly or through a global ARG's value. Longer
	// names go first so $TARGETOSVERSION is not reported as $TARGETOS.
	names := automaticArgNames()
	slices.SortStableFunc(names, func(a, b string) int { return len(b) - len(a) })
	for _, k := range names {
		if env.vals[k] == placeholder(k) && strings.Contains(res.Result, placeholder(k)) {
			return "", newError(line, "unexpanded variable $%s in FROM %s: BuildKit sets it at build time; pass it in BuildArgs", k, quote(word))
		}
	}
	if strings.Contains(res.Result, "$") {
		return "", newError(line, "unexpanded variable in FROM %s", quote(res.Result))
	}
	return res.Result, nil
}

// Normalize returns an image reference the way Docker reads it, with
// ":latest" added when neither tag nor digest is given:
// "debian" → "docker.io/library/debian:latest".
func Normalize(name string) (string, error) { return normalize(name) }

// normalize parses an image reference as Docker does and adds ":latest"
// when neither tag nor digest is given.
func normalize(name string) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", err
	}
	return reference.TagNameOnly(named).String(), nil
}

// commandBases returns the images a COPY --from or RUN --mount=from= of stage
// cur names. References to stages must point to earlier stages; n is the
// number of stages and byName maps lower-cased stage names to indexes.
func commandBases(lex *shell.Lex, cur int, stageName string, cmd instructions.Command, n int, byName map[string]int) ([]Base, error) {
	line := firstLine(cmd.Location())
	var out []Base
	switch c := cmd.(type) {
	case *instructions.CopyCommand:
		if c.From == "" {
			return nil, nil
		}
		// BuildKit refuses variables in --from (dockerfile2llb toCommand).
		res, err := (&argEnv{}).expand(lex, c.From)
		if err != nil || res.Result != c.From {
			return nil, newError(line, "variable expansion is not supported for COPY --from=%s", clip(c.From, maxQuote))
		}
		idx, err := strconv.Atoi(c.From)
		if err == nil {
			if idx < 0 || idx >= n {
				return nil, newError(line, "invalid stage index %d in COPY --from", idx)
			}
			if idx >= cur {
				return nil, newError(line, "cannot copy from stage %s, it needs to be defined before current stage %s", quote(c.From), quote(stageName))
			}
			return nil, nil
		}
		b, err := fromRef(c.From, KindCopy, cur, stageName, line, byName)
		if err != nil || b == nil {
			return nil, err
		}
		out = append(out, *b)
	case *instructions.RunCommand:
		// Mount options other than from= are validated by BuildKit only
		// once stage variables are known; from= is read at parse time.
		for _, m := range instructions.GetMounts(c) {
			if m.From == "" {
				continue
			}
			b, err := fromRef(m.From, KindMount, cur, stageName, line, byName)
			if err != nil {
				return nil, err
			}
			if b != nil {
				out = append(out, *b)
			}
		}
	}
	return out, nil
}

// fromRef resolves a --from / from= value that is not a stage index: an
// earlier stage (case-insensitive) gives nil, anything else must be a valid
// image reference.
func fromRef(from string, kind Kind, cur int, stageName string, line int, byName map[string]int) (*Base, error) {
	if i, ok := byName[strings.ToLower(from)]; ok {
		if i >= cur {
			return nil, newError(line, "%s=%s refers to stage %s, which is not defined before current stage %s", instr(kind), clip(from, maxQuote), quote(strings.ToLower(from)), quote(stageName))
		}
		return nil, nil
	}
	if from == scratchName {
		return nil, nil
	}
	ref, err := normalize(from)
	if err != nil {
		return nil, newError(line, "unknown stage or image in %s=%s: %w", instr(kind), clip(from, maxQuote), err)
	}
	return &Base{
		Stage: stageName,
		Role:  RoleBuild,
		Kind:  kind,
		Ref:   ref,
		Name:  from,
		Line:  line,
	}, nil
}

// instr names the instruction flag behind a Kind, for error messages.
func instr(k Kind) string {
	if k == KindMount {
		return "RUN --mount from"
	}
	return "COPY --from"
}

// firstLine returns the start line of the first range, or 0.
func firstLine(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

// buildkitError converts an error from BuildKit's parser into an *Error,
// keeping its line and dropping the "dockerfile parse error on line N"
// prefix that the line already conveys. BuildKit quotes the Dockerfile
// freely (an unknown instruction is the first word of its line, whatever
// it is); the message is bounded like every other.
// noStageMsg is BuildKit's error for an instruction outside any stage
// (instructions.CurrentStage).
const noStageMsg = "no build stage in current context"

func buildkitError(err error) *Error {
	line := 0
	msg := err.Error()
	var le *parser.LocationError
	if errors.As(err, &le) {
		if len(le.Locations) > 0 {
			line = firstLine(le.Locations[0])
		}
		if inner := le.Unwrap(); inner != nil {
			msg = inner.Error()
		}
	}
	if msg == noStageMsg {
		// An instruction other than ARG before the first FROM.
		msg = "instruction before the first FROM: a Dockerfile starts with FROM (only ARG may come before it)"
	}
	var ui *instructions.UnknownInstructionError
	if errors.As(err, &ui) {
		// Keep BuildKit's "(did you mean from?)", drawn from its own list.
		hint := ""
		if _, after, ok := strings.Cut(msg, ui.Error()); ok && strings.HasPrefix(after, " (did you mean ") && len(after) < 40 {
			hint = after
		}
		msg = "unknown instruction: " + clip(ui.Instruction, maxInstruction) + hint
	}
	return &Error{Line: line, Msg: bound(msg), err: err}
}

// Bounds on how much Dockerfile text an error message repeats. Whatever
// the file holds, a message quotes at most maxQuote bytes of one token
// and is at most maxMessage bytes long: the file may be untrusted, and
// errors travel to run records, events and logs.
// An unknown instruction is the first word of a line, whatever the file
// is, so it is clipped harder: no instruction is longer than 11 bytes.
const (
	maxQuote       = 64
	maxToken       = maxQuote + 8 // room for quote(): quotes and an ellipsis
	maxMessage     = 256
	maxInstruction = 20
)

// clip returns s with control characters replaced by '?', invalid UTF-8
// by U+FFFD, and cut to at most n bytes (on a character boundary) with
// "…" added when cut.
func clip(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > n {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// quote returns s clipped to maxQuote bytes, in double quotes.
func quote(s string) string { return `"` + clip(s, maxQuote) + `"` }

// bound clips every whitespace-separated token of msg longer than
// maxToken to maxQuote bytes, and the whole message to maxMessage.
func bound(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); {
		j := i
		for j < len(msg) && !isSpace(msg[j]) {
			j++
		}
		tok := msg[i:j]
		if len(tok) > maxToken {
			tok = clip(tok, maxQuote)
		}
		b.WriteString(tok)
		for j < len(msg) && isSpace(msg[j]) {
			b.WriteByte(' ')
			j++
		}
		i = j
	}
	return clip(b.String(), maxMessage)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

package dockerfile

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// parseCase is one Dockerfile and what Parse must return for it: either want
// or an error containing errSub on errLine.
type parseCase struct {
	name    string
	in      string
	opts    Options
	want    *Result
	errSub  string
	errLine int
}

// stage and base shorten the table.
func stage(name string, idx int, base string, parent, line int) Stage {
	return Stage{Name: name, Index: idx, Base: base, Parent: parent, Line: line}
}

func base(st string, role Role, kind Kind, ref, name, platform string, line int) Base {
	return Base{Stage: st, Role: role, Kind: kind, Ref: ref, Name: name, Platform: platform, Line: line}
}

const (
	debianLatest = "docker.io/library/debian:latest"
	alpineLatest = "docker.io/library/alpine:latest"
	golangLatest = "docker.io/library/golang:latest"
)

func parseCases() []parseCase {
	return []parseCase{
		{
			name: "plain FROM",
			in:   "FROM debian\n",
			want: &Result{
				Stages: []Stage{stage("0", 0, debianLatest, -1, 1)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, debianLatest, "debian", "", 1)},
			},
		},
		{
			name: "tag",
			in:   "FROM debian:12-slim\nRUN true\n",
			want: &Result{
				Stages: []Stage{stage("0", 0, "docker.io/library/debian:12-slim", -1, 1)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, "docker.io/library/debian:12-slim", "debian:12-slim", "", 1)},
			},
		},
		{
			name: "digest",
			in:   "FROM debian@" + dgst + "\n",
			want: &Result{
				Stages: []Stage{stage("0", 0, "docker.io/library/debian@"+dgst, -1, 1)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, "docker.io/library/debian@"+dgst, "debian@"+dgst, "", 1)},
			},
		},
		{
			name: "tag and digest",
			in:   "FROM debian:12@" + dgst + "\n",
			want: &Result{
				Stages: []Stage{stage("0", 0, "docker.io/library/debian:12@"+dgst, -1, 1)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, "docker.io/library/debian:12@"+dgst, "debian:12@"+dgst, "", 1)},
			},
		},
		{
			name: "registry with port",
			in:   "FROM 127.0.0.1:5000/base:1\n",
			want: &Result{
				Stages: []Stage{stage("0", 0, "127.0.0.1:5000/base:1", -1, 1)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, "127.0.0.1:5000/base:1", "127.0.0.1:5000/base:1", "", 1)},
			},
		},
		{
			name: "multi-stage named and unnamed",
			in: `FROM golang:1.22 AS build
RUN go build -o /out/app
FROM alpine:3.19
COPY --from=build /out/app /app
`,
			want: &Result{
				Stages: []Stage{
					stage("build", 0, "docker.io/library/golang:1.22", -1, 1),
					stage("1", 1, "docker.io/library/alpine:3.19", -1, 3),
				},
				Target: 1,
				Bases: []Base{
					base("build", RoleBuild, KindFrom, "docker.io/library/golang:1.22", "golang:1.22", "", 1),
					base("1", RoleRuntime, KindFrom, "docker.io/library/alpine:3.19", "alpine:3.19", "", 3),
				},
			},
		},
		{
			name: "chain of three stages",
			in: `FROM node:20 AS base
FROM base AS deps
RUN npm ci
FROM deps AS final
`,
			want: &Result{
				Stages: []Stage{
					stage("base", 0, "docker.io/library/node:20", -1, 1),
					stage("deps", 1, "base", 0, 2),
					stage("final", 2, "deps", 1, 4),
				},
				Target: 2,
				Bases:  []Base{base("base", RoleRuntime, KindFrom, "docker.io/library/node:20", "node:20", "", 1)},
			},
		},
		{
			name: "scratch final",
			in: `FROM golang AS b
RUN go build
FROM scratch
COPY --from=b /app /app
`,
			want: &Result{
				Stages: []Stage{
					stage("b", 0, golangLatest, -1, 1),
					stage("1", 1, "scratch", -1, 3),
				},
				Target: 1,
				Bases:  []Base{base("b", RoleBuild, KindFrom, golangLatest, "golang", "", 1)},
			},
		},
		{
			name: "scratch intermediate",
			in: `FROM scratch AS assets
COPY a /a
FROM alpine
COPY --from=assets /a /a
`,
			want: &Result{
				Stages: []Stage{
					stage("assets", 0, "scratch", -1, 1),
					stage("1", 1, alpineLatest, -1, 3),
				},
				Target: 1,
				Bases:  []Base{base("1", RoleRuntime, KindFrom, alpineLatest, "alpine", "", 3)},
			},
		},
		{
			name: "global ARG default",
			in:   "ARG VERSION=12\nARG IMAGE=debian:${VERSION}\nFROM ${IMAGE}-slim\n",
			want: &Result{
				Stages: []Stage{stage("0", 0, "docker.io/library/debian:12-slim", -1, 3)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, "docker.io/library/debian:12-slim", "debian:12-slim", "", 3)},
			},
		},
		{
			name: "build arg overrides default",
			in:   "ARG VERSION=12\nFROM debian:$VERSION\n",
			opts: Options{BuildArgs: map[string]string{"VERSION": "11", "UNDECLARED": "x"}},
			want: &Result{
				Stages: []Stage{stage("0", 0, "docker.io/library/debian:11", -1, 2)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, "docker.io/library/debian:11", "debian:11", "", 2)},
			},
		},
		{
			name: "ARG without default set by build arg",
			in:   "ARG BASE\nARG TAG=${TAG:-24.04}\nFROM $BASE:$TAG\n",
			opts: Options{BuildArgs: map[string]string{"BASE": "ubuntu"}},
			want: &Result{
				Stages: []Stage{stage("0", 0, "docker.io/library/ubuntu:24.04", -1, 3)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, "docker.io/library/ubuntu:24.04", "ubuntu:24.04", "", 3)},
			},
		},
		{
			name: "platform BUILDPLATFORM left literal",
			in: `FROM --platform=$BUILDPLATFORM golang:1.22 AS build
FROM --platform=${TARGETPLATFORM} alpine
`,
			want: &Result{
				Stages: []Stage{
					stage("build", 0, "docker.io/library/golang:1.22", -1, 1),
					stage("1", 1, alpineLatest, -1, 2),
				},
				Target: 1,
				Bases: []Base{
					base("build", RoleBuild, KindFrom, "docker.io/library/golang:1.22", "golang:1.22", "$BUILDPLATFORM", 1),
					base("1", RoleRuntime, KindFrom, alpineLatest, "alpine", "$TARGETPLATFORM", 2),
				},
			},
		},
		{
			name: "platform literal",
			in:   "FROM --platform=linux/arm64 alpine:3.19\n",
			want: &Result{
				Stages: []Stage{stage("0", 0, "docker.io/library/alpine:3.19", -1, 1)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, "docker.io/library/alpine:3.19", "alpine:3.19", "linux/arm64", 1)},
			},
		},
		{
			name: "automatic platform args supplied",
			in:   "FROM --platform=$BUILDPLATFORM tonistiigi/xx:$TARGETARCH\n",
			opts: Options{BuildArgs: map[string]string{"BUILDPLATFORM": "linux/amd64", "TARGETARCH": "arm64"}},
			want: &Result{
				Stages: []Stage{stage("0", 0, "docker.io/tonistiigi/xx:arm64", -1, 1)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, "docker.io/tonistiigi/xx:arm64", "tonistiigi/xx:arm64", "linux/amd64", 1)},
			},
		},
		{
			name: "COPY --from image",
			in: `FROM alpine
COPY --from=nginx:1.25 /etc/nginx /etc/nginx
COPY --from=nginx:1.25 /usr/share/nginx /usr/share/nginx
`,
			want: &Result{
				Stages: []Stage{stage("0", 0, alpineLatest, -1, 1)},
				Bases: []Base{
					base("0", RoleRuntime, KindFrom, alpineLatest, "alpine", "", 1),
					base("0", RoleBuild, KindCopy, "docker.io/library/nginx:1.25", "nginx:1.25", "", 2),
				},
			},
		},
		{
			name: "COPY --from stage name",
			in: `FROM golang AS builder
FROM alpine AS final
COPY --from=builder /app /app
`,
			want: &Result{
				Stages: []Stage{
					stage("builder", 0, golangLatest, -1, 1),
					stage("final", 1, alpineLatest, -1, 2),
				},
				Target: 1,
				Bases: []Base{
					base("builder", RoleBuild, KindFrom, golangLatest, "golang", "", 1),
					base("final", RoleRuntime, KindFrom, alpineLatest, "alpine", "", 2),
				},
			},
		},
		{
			name: "COPY --from index",
			in:   "FROM golang\nRUN go build\nFROM alpine\nCOPY --from=0 /app /app\n",
			want: &Result{
				Stages: []Stage{
					stage("0", 0, golangLatest, -1, 1),
					stage("1", 1, alpineLatest, -1, 3),
				},
				Target: 1,
				Bases: []Base{
					base("0", RoleBuild, KindFrom, golangLatest, "golang", "", 1),
					base("1", RoleRuntime, KindFrom, alpineLatest, "alpine", "", 3),
				},
			},
		},
		{
			name: "RUN --mount from image",
			in:   "FROM alpine\nRUN --mount=type=bind,from=busybox:1.36,target=/bb \\\n    --mount=type=cache,target=/cache ls /bb\n",
			want: &Result{
				Stages: []Stage{stage("0", 0, alpineLatest, -1, 1)},
				Bases: []Base{
					base("0", RoleRuntime, KindFrom, alpineLatest, "alpine", "", 1),
					base("0", RoleBuild, KindMount, "docker.io/library/busybox:1.36", "busybox:1.36", "", 2),
				},
			},
		},
		{
			name: "RUN --mount from stage",
			in:   "FROM golang AS deps\nFROM alpine\nRUN --mount=type=cache,from=DEPS,target=/go ls /go\n",
			want: &Result{
				Stages: []Stage{
					stage("deps", 0, golangLatest, -1, 1),
					stage("1", 1, alpineLatest, -1, 2),
				},
				Target: 1,
				Bases: []Base{
					base("deps", RoleBuild, KindFrom, golangLatest, "golang", "", 1),
					base("1", RoleRuntime, KindFrom, alpineLatest, "alpine", "", 2),
				},
			},
		},
		{
			// BuildKit resolves mount from= by stage name only, never by
			// index: from=0 is the image "0".
			name: "RUN --mount from digit is an image",
			in:   "FROM alpine\nRUN --mount=from=0,target=/x ls\n",
			want: &Result{
				Stages: []Stage{stage("0", 0, alpineLatest, -1, 1)},
				Bases: []Base{
					base("0", RoleRuntime, KindFrom, alpineLatest, "alpine", "", 1),
					base("0", RoleBuild, KindMount, "docker.io/library/0:latest", "0", "", 2),
				},
			},
		},
		{
			// Repeated stage names are only a lint warning in BuildKit;
			// FROM sees the latest earlier one, the target the last one.
			name: "duplicate stage names",
			in:   "FROM alpine AS a\nFROM debian AS a\nFROM a AS b\nFROM alpine AS a\n",
			opts: Options{Target: "b"},
			want: &Result{
				Stages: []Stage{
					stage("a", 0, alpineLatest, -1, 1),
					stage("a", 1, debianLatest, -1, 2),
					stage("b", 2, "a", 1, 3),
					stage("a", 3, alpineLatest, -1, 4),
				},
				Target: 2,
				Bases: []Base{
					base("a", RoleBuild, KindFrom, alpineLatest, "alpine", "", 1),
					base("a", RoleRuntime, KindFrom, debianLatest, "debian", "", 2),
				},
			},
		},
		{
			name: "syntax directive",
			in:   "# syntax=docker/dockerfile:1.7\n# check=skip=all\nFROM alpine\n",
			want: &Result{
				Syntax: "docker/dockerfile:1.7",
				Stages: []Stage{stage("0", 0, alpineLatest, -1, 3)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, alpineLatest, "alpine", "", 3)},
			},
		},
		{
			name: "target selects middle stage",
			in: `FROM golang AS build
FROM build AS test
RUN go test ./...
FROM alpine AS final
COPY --from=build /app /app
`,
			opts: Options{Target: "test"},
			want: &Result{
				Stages: []Stage{
					stage("build", 0, golangLatest, -1, 1),
					stage("test", 1, "build", 0, 2),
					stage("final", 2, alpineLatest, -1, 4),
				},
				Target: 1,
				Bases: []Base{
					base("build", RoleRuntime, KindFrom, golangLatest, "golang", "", 1),
					base("final", RoleBuild, KindFrom, alpineLatest, "alpine", "", 4),
				},
			},
		},
		{
			name: "case-insensitive stage names",
			in: `FROM golang AS Builder
FROM builder AS Test
FROM alpine
COPY --from=BUILDER /app /app
`,
			opts: Options{Target: "TEST"},
			want: &Result{
				Stages: []Stage{
					stage("builder", 0, golangLatest, -1, 1),
					stage("test", 1, "builder", 0, 2),
					stage("2", 2, alpineLatest, -1, 3),
				},
				Target: 1,
				Bases: []Base{
					base("builder", RoleRuntime, KindFrom, golangLatest, "golang", "", 1),
					base("2", RoleBuild, KindFrom, alpineLatest, "alpine", "", 3),
				},
			},
		},
		{
			name: "same image in two stages",
			in:   "FROM alpine AS a\nFROM docker.io/library/alpine AS b\nCOPY --from=alpine /x /x\n",
			want: &Result{
				Stages: []Stage{
					stage("a", 0, alpineLatest, -1, 1),
					stage("b", 1, alpineLatest, -1, 2),
				},
				Target: 1,
				Bases: []Base{
					base("a", RoleBuild, KindFrom, alpineLatest, "alpine", "", 1),
					base("b", RoleRuntime, KindFrom, alpineLatest, "docker.io/library/alpine", "", 2),
					base("b", RoleBuild, KindCopy, alpineLatest, "alpine", "", 3),
				},
			},
		},
		{
			name: "comments and line continuations",
			in: `# leading comment

FROM \
  debian:12 \
  AS base
# a comment
RUN echo \
  # comment inside continuation
  hi
FROM base
COPY --from=quay.io/prometheus/busybox \
  /bin/busybox /bb
`,
			want: &Result{
				Stages: []Stage{
					stage("base", 0, "docker.io/library/debian:12", -1, 3),
					stage("1", 1, "base", 0, 10),
				},
				Target: 1,
				Bases: []Base{
					base("base", RoleRuntime, KindFrom, "docker.io/library/debian:12", "debian:12", "", 3),
					base("1", RoleBuild, KindCopy, "quay.io/prometheus/busybox:latest", "quay.io/prometheus/busybox", "", 11),
				},
			},
		},
		{
			name: "escape directive",
			in:   "# escape=`\nARG V=3.19\nFROM `\n  alpine:$V\n",
			want: &Result{
				Stages: []Stage{stage("0", 0, "docker.io/library/alpine:3.19", -1, 3)},
				Bases:  []Base{base("0", RoleRuntime, KindFrom, "docker.io/library/alpine:3.19", "alpine:3.19", "", 3)},
			},
		},
		{
			name: "lower-case instructions and heredoc",
			in:   "from alpine as a\nrun <<EOF\nFROM notastage\nEOF\nFROM a\ncopy --from=a / /\n",
			want: &Result{
				Stages: []Stage{
					stage("a", 0, alpineLatest, -1, 1),
					stage("1", 1, "a", 0, 5),
				},
				Target: 1,
				Bases:  []Base{base("a", RoleRuntime, KindFrom, alpineLatest, "alpine", "", 1)},
			},
		},

		// Malformed Dockerfiles.
		{name: "unknown instruction", in: "FROM alpine\nFOO bar\n", errSub: "unknown instruction: FOO", errLine: 2},
		{name: "FROM without image", in: "ARG X=1\nFROM\n", errSub: "FROM requires either one or three arguments", errLine: 2},
		{name: "FROM blank after expansion", in: "ARG X\nFROM $X\n", errSub: "should not be blank", errLine: 2},
		{name: "invalid reference upper case", in: "FROM UPPER/Case\n", errSub: "must be lowercase", errLine: 1},
		{name: "invalid reference short digest", in: "FROM alpine\nFROM foo@sha256:short\n", errSub: "invalid reference format", errLine: 2},
		{name: "FROM stage with other case", in: "FROM golang AS builder\nFROM Builder\n", errSub: `write "builder"`, errLine: 2},
		{name: "unknown target", in: "FROM alpine AS a\n", opts: Options{Target: "nope"}, errSub: `target stage "nope" could not be found`},
		{name: "unexpanded variable in FROM", in: "FROM golang:1.22-$TARGETOS\n", errSub: "unexpanded variable $TARGETOS", errLine: 1},
		{name: "unexpanded variable via ARG", in: "ARG IMG=xx:${TARGETARCH}\n\nFROM $IMG\n", errSub: "unexpanded variable $TARGETARCH", errLine: 3},
		{name: "escaped dollar in FROM", in: "FROM alpine\nFROM foo\\$bar\n", errSub: "unexpanded variable", errLine: 2},
		{name: "oversized input", in: "FROM alpine\n" + strings.Repeat("#", MaxSize), errSub: "larger than 1048576 bytes"},
		{name: "no FROM at all", in: "RUN echo hi\n", errSub: "instruction before the first FROM", errLine: 1},
		{name: "only global ARGs", in: "ARG A=1\n", errSub: "no FROM instruction"},
		{name: "instruction between ARG and FROM", in: "ARG A\nRUN y\nFROM a\n", errSub: "instruction before the first FROM", errLine: 2},
		{name: "empty file", in: "\n# just a comment\n", errSub: "file with no instructions", errLine: 2},
		{name: "invalid stage name", in: "FROM alpine AS 1st\n", errSub: "invalid name for build stage", errLine: 1},
		{name: "invalid platform", in: "FROM --platform=a/b/c/d alpine\n", errSub: "invalid FROM --platform", errLine: 1},
		{name: "bad substitution", in: "FROM alpine:${\n", errSub: "missing '}'", errLine: 1},
		{name: "COPY --from unknown image", in: "FROM alpine\nCOPY --from=Build /a /b\n", errSub: "unknown stage or image in COPY --from", errLine: 2},
		{name: "COPY --from later stage", in: "FROM alpine AS a\nCOPY --from=b /a /b\nFROM alpine AS b\n", errSub: "not defined before current stage", errLine: 2},
		{name: "COPY --from own index", in: "FROM alpine\nCOPY --from=0 /a /b\n", errSub: "needs to be defined before current stage", errLine: 2},
		{name: "COPY --from index out of range", in: "FROM alpine\nCOPY --from=7 /a /b\n", errSub: "invalid stage index 7", errLine: 2},
		{name: "COPY --from variable", in: "ARG X=a\nFROM alpine\nCOPY --from=$X /a /b\n", errSub: "variable expansion is not supported", errLine: 3},
		{name: "RUN --mount from variable", in: "FROM alpine\nRUN --mount=from=$X,target=/x ls\n", errSub: "doesn't support variable expansion", errLine: 2},
		{name: "RUN --mount from invalid image", in: "FROM alpine\nRUN --mount=from=x@y,target=/x ls\n", errSub: "unknown stage or image in RUN --mount from", errLine: 2},
		{name: "line longer than bufio limit", in: "FROM alpine\n#" + strings.Repeat("x", 70000) + "\n", errSub: "greater than max allowed size", errLine: 1},
		{name: "self-doubling ARG", in: "ARG A=xx\n" + strings.Repeat("ARG A=$A$A\n", 30) + "FROM alpine\n", errSub: "variable expansion exceeds", errLine: 22},
		{name: "pattern substitution refused", in: "ARG A=x\nARG B=${A//?/$A}\nFROM alpine\n", errSub: "pattern substitution", errLine: 2},
		{name: "unterminated heredoc", in: "FROM alpine\nRUN <<EOF\necho\n", errSub: "unterminated heredoc", errLine: 2},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in), tc.opts)
			if tc.errSub != "" {
				var perr *Error
				if !errors.As(err, &perr) {
					t.Fatalf("Parse() error = %v (%T), want *Error containing %q", err, err, tc.errSub)
				}
				if !strings.Contains(perr.Error(), tc.errSub) {
					t.Errorf("Parse() error = %q, want it to contain %q", perr.Error(), tc.errSub)
				}
				if perr.Line != tc.errLine {
					t.Errorf("Parse() error line: got %d, want %d (%v)", perr.Line, tc.errLine, perr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse() got vs want (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRuntime(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		opts     Options
		want     *Base
	}{
		{
			name: "root of chain",
			in:   "FROM node:20 AS base\nFROM base AS deps\nFROM alpine\nCOPY --from=deps / /\nFROM deps\n",
			want: &Base{Stage: "base", Role: RoleRuntime, Kind: KindFrom, Ref: "docker.io/library/node:20", Name: "node:20", Line: 1},
		},
		{
			name: "scratch root",
			in:   "FROM golang AS b\nFROM scratch\nCOPY --from=b / /\n",
			want: nil,
		},
		{
			name: "target",
			in:   "FROM golang AS b\nFROM scratch\nCOPY --from=b / /\n",
			opts: Options{Target: "b"},
			want: &Base{Stage: "b", Role: RoleRuntime, Kind: KindFrom, Ref: golangLatest, Name: "golang", Line: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Parse(strings.NewReader(tc.in), tc.opts)
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, runtimeBase(res)); diff != "" {
				t.Errorf("runtime base got vs want (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseLargeInputs checks that inputs near MaxSize parse quickly: the
// size limit is the guard against slow parsing, so it must be enough.
func TestParseLargeInputs(t *testing.T) {
	fill := func(prefix, unit, suffix string) string {
		var sb strings.Builder
		sb.WriteString(prefix)
		for i := 0; sb.Len()+len(unit)+len(suffix)+16 < MaxSize; i++ {
			sb.WriteString(strings.ReplaceAll(unit, "%d", strconv.Itoa(i)))
		}
		sb.WriteString(suffix)
		return sb.String()
	}
	for name, in := range map[string]string{
		"stages":        fill("", "FROM alpine AS s%d\n", ""),
		"from lines":    fill("", "FROM a\n", ""),
		"copies":        fill("FROM alpine\n", "COPY --from=img%d a b\n", ""),
		"mounts":        fill("FROM alpine AS s\n", "RUN --mount=from=S,target=/x ls\n", ""),
		"continuations": fill("FROM alpine\nRUN ", "x \\\n", "\n"),
		"heredoc":       fill("FROM alpine\nRUN <<EOF\n", "line\n", "EOF\n"),
		"global args":   fill("ARG A=x\n", "ARG A%d=$A\n", "FROM alpine\n"),
	} {
		start := time.Now()
		_, err := Parse(strings.NewReader(in), Options{})
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: Parse(%d bytes) took %v (err %v)", name, len(in), d, err)
		}
	}
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Parse(iotest.ErrReader(boom), Options{})
	if !errors.Is(err, boom) {
		t.Fatalf("Parse() error = %v, want it to wrap %v", err, boom)
	}
}

func TestParseExactlyMaxSize(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("FROM alpine\n")
	for sb.Len() < MaxSize-100 {
		sb.WriteString("# " + strings.Repeat("x", 97) + "\n")
	}
	sb.WriteString("#" + strings.Repeat("x", MaxSize-sb.Len()-1))
	in := sb.String()
	if _, err := Parse(strings.NewReader(in), Options{}); err != nil {
		t.Fatalf("Parse(%d bytes) error = %v, want nil", len(in), err)
	}
}

func TestErrorUnwrap(t *testing.T) {
	_, err := Parse(strings.NewReader("FROM alpine\nFOO bar\n"), Options{})
	var perr *Error
	if !errors.As(err, &perr) || perr.Unwrap() == nil {
		t.Fatalf("Parse() error = %#v, want *Error wrapping BuildKit's error", err)
	}
	if got, want := perr.Error(), "line 2: "+perr.Msg; got != want {
		t.Errorf("Error() got %q, want %q", got, want)
	}
}

func TestContextKey(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		wantErr  bool
	}{
		{in: "debian", want: "debian"},
		{in: "debian:latest", want: "debian"},
		{in: "docker.io/library/debian:12", want: "debian:12"},
		{in: "docker.io/library/debian", want: "debian"},
		{in: "127.0.0.1:5000/base:1", want: "127.0.0.1:5000/base:1"},
		{in: "ghcr.io/org/app:latest", want: "ghcr.io/org/app"},
		{in: "library/debian@" + dgst, want: "debian@" + dgst},
		{in: "Debian", wantErr: true},
		{in: "", wantErr: true},
	} {
		got, err := ContextKey(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ContextKey(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if got != tc.want {
			t.Errorf("ContextKey(%q): got %q vs want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseCases() {
		if len(tc.in) <= 4096 {
			f.Add(tc.in, tc.opts.Target)
		}
	}
	f.Fuzz(func(t *testing.T, in, target string) {
		start := time.Now()
		res, err := Parse(strings.NewReader(in), Options{Target: target, BuildArgs: map[string]string{"A": "alpine"}})
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Parse() took %v on %d bytes", d, len(in))
		}
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse() error %v is %T, want *Error", err, err)
			}
			return
		}
		if res.Target < 0 || res.Target >= len(res.Stages) {
			t.Fatalf("Target %d out of range of %d stages", res.Target, len(res.Stages))
		}
		runtime := 0
		for _, b := range res.Bases {
			if b.Ref == "" || b.Line <= 0 {
				t.Fatalf("bad base %+v", b)
			}
			if b.Role == RoleRuntime {
				runtime++
			}
		}
		if runtime > 1 {
			t.Fatalf("%d runtime bases, want at most 1", runtime)
		}
		for i, s := range res.Stages {
			if s.Parent >= i {
				t.Fatalf("stage %d has parent %d", i, s.Parent)
			}
		}
	})
}

// runtimeBase returns the base with RoleRuntime — the one whose layers end
// up in the target image — or nil when the target's root is scratch.
func runtimeBase(r *Result) *Base {
	for i := range r.Bases {
		if r.Bases[i].Role == RoleRuntime {
			return &r.Bases[i]
		}
	}
	return nil
}

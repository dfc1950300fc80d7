package arch

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The dependency rules of the house. A change that needs to break one
// changes the rule here, in the same commit, with the reason; README's
// layout section repeats them for readers.
//
//  1. store holds rows and transactions only: it depends on no other
//     internal package except the pure types task and dockerfile and the
//     pure helpers (rule 2), so it can never call back into the planner,
//     the runner or the server.
//  2. api, build, dockerfile, task, source, hook and githook are leaves: they import
//     nothing internal but the pure helpers, so each can be read, tested
//     and fuzzed alone (and the wire contract cannot grow a dependency on
//     storage). The pure helpers — redact (hiding credentials) and backoff
//     (waiting policies) — import nothing internal themselves; a leaf may
//     use them rather than keep its own copy (source redacted URLs on its
//     own, and three other packages had their own redactor). identity
//     (the caller: user and roles, carried in a request's context) and
//     audit (the audit log's hash chain and signed checkpoint) are pure
//     helpers too: the store records the caller as an audit entry's
//     actor and hashes the entry in the transaction of the change, and
//     the CLI verifies an export offline with the same code. httpbody
//     (an untrusted request body read within a bound) is one too: the
//     registry and git webhook receivers each had their own copy.
//  3. cmd/refit is the CLI: it speaks to the server through client and the
//     wire types, and never imports store, plan, lifecycle or runner (a
//     run's life is the server's; lifecycle joined runner and plan here
//     when it took their queue and finishing).
//  4. client imports nothing internal but the wire contract.
//  5. serve constructs and connects the parts; only cmd/refit (and the
//     end-to-end tests and benchmarks, which start a whole server) import it.
//
// Rules 1, 2 and 4 hold for every package a package depends on, directly
// or not; rules 3 and 5 are about direct imports (cmd/refit reaches every
// package through serve by design).

const module = "github.com/refit-dev/refit/"

// known lists the imports that break a rule today and are being removed;
// the test fails if one of them disappears (so the list cannot go stale)
// as well as when a new one appears.
var known = map[string]string{}

type pkg struct {
	path    string   // relative to the module, e.g. "internal/store"
	imports []string // direct internal imports, relative
	deps    []string // every internal dependency, relative
}

func TestDependencyRules(t *testing.T) {
	pkgs := list(t)
	var broken []string
	check := func(from, to string) {
		broken = append(broken, from+" -> "+to)
	}
	leaves := []string{"internal/api", "internal/build", "internal/dockerfile", "internal/task", "internal/source", "internal/hook", "internal/githook"}
	pure := []string{"internal/redact", "internal/backoff", "internal/identity", "internal/audit", "internal/httpbody"}
	for _, p := range pkgs {
		switch {
		case p.path == "internal/store":
			for _, d := range p.deps {
				if d != "internal/task" && d != "internal/dockerfile" && !slices.Contains(pure, d) {
					check(p.path, d)
				}
			}
		case slices.Contains(leaves, p.path):
			for _, d := range p.deps {
				if !slices.Contains(pure, d) {
					check(p.path, d)
				}
			}
		case slices.Contains(pure, p.path):
			for _, d := range p.deps {
				check(p.path, d)
			}
		case p.path == "cmd/refit":
			for _, d := range p.imports {
				if d == "internal/store" || d == "internal/plan" || d == "internal/lifecycle" || d == "internal/runner" {
					check(p.path, d)
				}
			}
		case p.path == "internal/client":
			for _, d := range p.deps {
				if d != "internal/api" {
					check(p.path, d)
				}
			}
		}
		if p.path != "cmd/refit" && slices.Contains(p.imports, "internal/serve") {
			check(p.path, "internal/serve")
		}
	}

	for _, b := range broken {
		if _, ok := known[b]; !ok {
			t.Errorf("%s breaks the dependency rules (see the comment at the top of %s)", b, "internal/arch/arch_test.go")
		}
	}
	for k, why := range known {
		if !slices.Contains(broken, k) {
			t.Errorf("%s no longer breaks a rule (%s): remove it from known", k, why)
		}
	}
}

// list returns the module's packages (without their tests) with their
// direct and transitive internal dependencies.
func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 3 {
			t.Fatalf("unexpected go list line %q", line)
		}
		pkgs = append(pkgs, pkg{path: strings.TrimPrefix(f[0], module), imports: internal(f[1]), deps: internal(f[2])})
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// internal keeps the module's own packages from a space-separated list,
// relative to the module.
func internal(list string) []string {
	var out []string
	for _, p := range strings.Fields(list) {
		if rel, ok := strings.CutPrefix(p, module); ok {
			out = append(out, rel)
		}
	}
	return out
}

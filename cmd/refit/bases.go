package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newBasesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bases",
		Short: "Show the base images tasks build on: current digest, last check, dependents",
		Long: `Show every base image reference the tasks build on, as refit's index sees
it: the digest its tag points to now and its kind (an index, for a
multi-platform image, or a single manifest) — the digest runs pin and
'refit explain' shows; each platform's manifest digest is in -o json and
'refit bases history' — when it was last checked and last changed, the last check error, and which tasks use it — "runtime" (the
final image's base: a change rebuilds the task) or "build" (build-time only;
a change rebuilds only tasks with triggers.baseScope: all).`,
		Example: `  refit bases
  refit bases -o json
  refit bases history docker.io/library/debian:12`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			bases, err := c.Bases(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(bases, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "REFERENCE\tDIGEST\tKIND\tPLATFORMS\tCHECKED\tCHANGED\tTASKS\tERROR")
				for _, b := range bases {
					var uses []string
					for _, u := range b.Tasks {
						s := u.Task + " (" + u.Role
						if !u.Watched {
							s += ", not watched"
						}
						uses = append(uses, s+")")
					}
					errMsg := "-"
					if b.LastError != "" {
						errMsg = fmt.Sprintf("since %s: %s", b.ErrorSince.Local().Format("01-02 15:04"), b.LastError)
					}
					var plats []string
					for _, p := range b.Platforms {
						if p.Platform != "" {
							plats = append(plats, p.Platform)
						}
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Ref, orDash(short(b.Digest)), orDash(digestKind(b.MediaType)),
						orDash(strings.Join(plats, ", ")), when(b.CheckedAt), when(b.ChangedAt), strings.Join(uses, ", "), errMsg)
				}
			})
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "history REFERENCE",
		Short: "Show every digest a base reference has pointed to, and when",
		Example: `  refit bases history debian:12
  refit bases history 127.0.0.1:5000/base/busybox:1 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			obs, err := c.BaseHistory(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			return g.print(obs, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "SEEN\tPLATFORM\tDIGEST\tPREVIOUS\tSOURCE")
				for _, o := range obs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", o.SeenAt.Local().Format("2006-01-02 15:04:05"), orDash(o.Platform), short(o.Digest), orDash(short(o.OldDigest)), o.Source)
				}
			})
		},
	})
	cmd.AddCommand(newBasesDiffCmd(g))
	return cmd
}

func newGraphCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Draw the dependency graph of tasks and base images",
		Long: `Draw which tasks build on which base references, and which references
tasks push (so one task's output is another's base). Formats: text (default),
dot (Graphviz: refit graph -o dot | dot -Tsvg > graph.svg) and json.`,
		Example: `  refit graph
  refit graph -o dot | dot -Tpng > graph.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			gr, err := c.Graph(cmd.Context())
			if err != nil {
				return err
			}
			switch g.output {
			case "json":
				return g.print(gr, nil)
			case "dot":
				fmt.Fprintln(g.out, "digraph refit {\n  rankdir=LR;")
				for _, t := range gr.Tasks {
					fmt.Fprintf(g.out, "  %q [shape=box, style=bold];\n", t)
				}
				for _, r := range gr.Refs {
					fmt.Fprintf(g.out, "  %q [shape=ellipse];\n", r)
				}
				for _, e := range gr.Edges {
					style := "solid"
					if e.Kind == "build" || (e.Kind != "pushes" && !e.Watched) {
						style = "dashed"
					}
					fmt.Fprintf(g.out, "  %q -> %q [label=%q, style=%s];\n", e.From, e.To, e.Kind, style)
				}
				fmt.Fprintln(g.out, "}")
				return nil
			case "text", "table", "":
				// Each task with what it builds on and what it pushes.
				on := map[string][]string{}
				pushes := map[string][]string{}
				for _, e := range gr.Edges {
					if e.Kind == "pushes" {
						pushes[e.From] = append(pushes[e.From], e.To)
						continue
					}
					mark := ""
					if e.Watched {
						mark = ", rebuilds on change"
					}
					on[e.To] = append(on[e.To], fmt.Sprintf("%s (%s%s)", e.From, e.Kind, mark))
				}
				tasks := append([]string(nil), gr.Tasks...)
				sort.Strings(tasks)
				for _, t := range tasks {
					fmt.Fprintf(g.out, "%s\n", t)
					for _, b := range on[t] {
						fmt.Fprintf(g.out, "  ← %s\n", b)
					}
					for _, p := range pushes[t] {
						fmt.Fprintf(g.out, "  → %s\n", p)
					}
				}
				return nil
			}
			return fmt.Errorf("unknown graph format %q (want text, dot or json)", g.output)
		},
	}
	return cmd
}

func newExplainCmd(g *globals) *cobra.Command {
	var publicKey string
	cmd := &cobra.Command{
		Use:   "explain TASK | IMAGE@DIGEST",
		Short: "Explain why a task did (or didn't) rebuild, or why an image exists",
		Long: `Explain how refit sees a task: whether base updates rebuild it (trigger and
scope), each base image it builds on — watched or not, when it was last
checked and changed, any error checking it, whether the last build is stale —
the tasks upstream and downstream of it, and its last runs with their causes.

Given an image by digest (REPOSITORY@sha256:…, the image's or one
platform's), explain why it exists: the run that pushed it, its cause
chain (this run ← cascade of run X ← base update of REF from sha256:old to
sha256:new, observed when and how), the commit, the pinned bases, the test
result and approvals when there are any, and which of its tags point at it
now. The server tells it from its runs; when no run of the server pushed it
(a copy in another registry, or the database is gone, or no server
answers) refit reads the image's signed attestation from its registry
(referrers API, or the sha256-<hex> tag fallback) and verifies it with
--public-key FILE or, without one, the server's key (GET
/api/v1/signing-key). An attestation that does not verify is printed
marked UNVERIFIED and the command fails.`,
		Example: `  refit explain api
  refit explain api -o json
  refit explain 127.0.0.1:5000/app@sha256:4f1c…
  curl -s localhost:7300/api/v1/signing-key | jq -r .publicKey > refit.pub
  refit explain mirror.example/app@sha256:4f1c… --public-key refit.pub`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if strings.Contains(a[0], "@") {
				return explainImage(cmd.Context(), g, a[0], publicKey)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			e, err := c.Explain(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			return g.print(e, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "task\t%s\n", e.Task)
				fmt.Fprintf(w, "base trigger\t%s\n", e.Trigger)
				for _, b := range e.Bases {
					state := "not watched"
					if b.Watched {
						state = "watched"
					}
					if b.Stale {
						state += ", STALE"
					}
					current := orDash(short(b.Current))
					if k := digestKind(b.MediaType); k != "" {
						current += " (" + k + ")"
					}
					fmt.Fprintf(w, "base\t%s (%s, stage %s): %s; current %s, built on %s; checked %s, changed %s\n",
						b.Ref, b.Role, b.Stage, state, current, orDash(short(b.Built)), when(b.CheckedAt), when(b.ChangedAt))
				}
				if len(e.Upstream) > 0 {
					fmt.Fprintf(w, "builds on\t%s\n", strings.Join(e.Upstream, ", "))
				}
				if len(e.Dependent) > 0 {
					fmt.Fprintf(w, "rebuilds\t%s\n", strings.Join(e.Dependent, ", "))
				}
				for _, r := range e.LastRuns {
					fmt.Fprintf(w, "run\t%s %s (%s) %s\n", r.ID, r.State, r.Cause.All(), r.CreatedAt.Local().Format("2006-01-02 15:04"))
				}
				fmt.Fprintln(w)
				for _, v := range e.Verdict {
					fmt.Fprintf(w, "• %s\n", v)
				}
			})
		},
	}
	cmd.Flags().StringVar(&publicKey, "public-key", "", "verify an image's attestation with this public key (PEM, from GET /api/v1/signing-key)")
	return cmd
}

// digestKind names what a top-level digest is, by its media type:
// "index" (an OCI index or Docker manifest list: one image per platform)
// or "manifest" (one image); "" when unknown.
func digestKind(mediaType string) string {
	switch {
	case mediaType == "":
		return ""
	case strings.Contains(mediaType, "index") || strings.Contains(mediaType, "manifest.list"):
		return "index"
	}
	return "manifest"
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19] + "…"
	}
	return d
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

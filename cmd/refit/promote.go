package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/refit-dev/refit/internal/api"
)

func newApproveCmd(g *globals) *cobra.Command { return newDecideCmd(g, true) }
func newRejectCmd(g *globals) *cobra.Command  { return newDecideCmd(g, false) }

func newDecideCmd(g *globals, approve bool) *cobra.Command {
	var comment string
	verb, long := "approve", `Approve RUN, which awaits approval (its task's promote policy is approval).
The approval is for the run's digest. Once the task's approvers count is
reached by distinct users, the run's promote tags are moved to its digest.
The user whose action caused the run (a manual run's user, a commit's author)
cannot approve it.`
	if !approve {
		verb, long = "reject", `Reject RUN, which awaits approval: it ends rejected and is never promoted;
runs that waited for it are canceled.`
	}
	cmd := &cobra.Command{
		Use:     verb + " RUN",
		Short:   map[bool]string{true: "Approve a run awaiting approval", false: "Reject a run awaiting approval"}[approve],
		Long:    long,
		Example: fmt.Sprintf("  refit %s r-12 --comment \"CVE-2026-1234\"", verb),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			fn := c.Approve
			if !approve {
				fn = c.Reject
			}
			run, err := fn(cmd.Context(), a[0], comment)
			if err != nil {
				return serverSaid(err, "%s run %s", map[bool]string{true: "approving", false: "rejecting"}[approve], a[0])
			}
			return g.print(run, func(w *tabwriter.Writer) {
				switch run.State {
				case api.StatePromoting, api.StateSucceeded:
					fmt.Fprintf(w, "run %s approved: promoting %s\n", run.ID, run.Digest)
				case api.StateAwaitingApproval:
					fmt.Fprintf(w, "run %s approved; it awaits more approvals\n", run.ID)
				default:
					fmt.Fprintln(w, outcome(run))
				}
			})
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why (recorded with the decision)")
	return cmd
}

func newPromoteCmd(g *globals) *cobra.Command {
	var digest string
	cmd := &cobra.Command{
		Use:   "promote TASK --digest DIGEST",
		Short: "Point a task's promote tags back at a digest it promoted before",
		Long: `Roll back: move TASK's promote tags to DIGEST, an image the task promoted
before (a digest it never promoted is refused). It is a registry tag
operation by digest, never a rebuild; it prints each tag's old and new digest.`,
		Example: "  refit promote api --digest sha256:4f2a…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if digest == "" {
				return fmt.Errorf("--digest is required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ps, err := c.Promote(cmd.Context(), a[0], digest)
			if err != nil {
				return serverSaid(err, "promoting %s of task %s", digest, a[0])
			}
			return g.print(ps, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "TAG\tOLD\tNEW")
				for _, p := range ps {
					fmt.Fprintf(w, "%s:%s\t%s\t%s\n", p.Repository, p.Tag, p.OldDigest, p.NewDigest)
				}
			})
		},
	}
	cmd.Flags().StringVar(&digest, "digest", "", "the digest to promote (sha256:…)")
	return cmd
}

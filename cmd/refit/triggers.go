package main

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/refit-dev/refit/internal/api"
)

func newTaskTriggersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "triggers NAME",
		Short: "Show what starts runs of a task: commits, bases, manual runs, schedules, base tags",
		Long: `Show a task's triggers, a section per kind: the commit its git source
follows, the bases whose change rebuilds it, whether manual runs are
allowed, and each schedule with its next three due times (in the
schedule's time zone) and its last scheduled run, and each baseTags entry
with the newest matching tag seen and the tag its build arg carries now.
Under the commit section, a "last" line per source (each webhook format,
and "poll") shows the last push delivery: when, ref, commit, the HTTP
status answered and the verdict (runs queued, replay, repository unused,
skipped by a filter and why, or refused: bad signature, no secret,
unreadable payload).`,
		Example: `  refit task triggers api
  refit task triggers api -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			tr, err := c.Triggers(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			return g.print(tr, func(w *tabwriter.Writer) { printTriggers(w, tr); printBaseTags(w, tr) })
		},
	}
}

// printTriggers writes one section per kind of trigger.
func printTriggers(w *tabwriter.Writer, tr api.TaskTriggers) {
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	commit := onOff(tr.Commit.Enabled)
	c := tr.Commit
	if c.Repo != "" {
		commit += fmt.Sprintf("\t%s at %s", c.Repo, c.Ref)
	} else {
		commit += "\t(a source.dir has no commits)"
	}
	fmt.Fprintf(w, "commit\t%s\n", commit)
	if c.Repo != "" {
		if f := c.Filters; len(f.Branches)+len(f.Paths) > 0 || f.Tags || f.Deletions {
			fmt.Fprintf(w, "\tfilters\tbranches %s; paths %s; tags %t; deletions %t\n",
				orAll(f.Branches, "the ref"), orAll(f.Paths, "any"), f.Tags, f.Deletions)
		}
		secret := "set"
		if !c.SecretSet {
			secret = "not set: webhooks are refused until `refit hook secret set " + c.Repo + "`"
		}
		fmt.Fprintf(w, "\twebhook\tPOST <server>%s (secret %s)\n", strings.Join(c.Webhooks, " | "), secret)
		refs := make([]string, 0, len(c.Heads))
		for ref := range c.Heads {
			refs = append(refs, ref)
		}
		slices.Sort(refs)
		for _, ref := range refs {
			fmt.Fprintf(w, "\thead\t%s %.12s\n", ref, c.Heads[ref])
		}
		for _, d := range c.Deliveries {
			fmt.Fprintf(w, "\tlast\t%s\n", deliveryLine(d))
		}
	}
	watched := "no base watched"
	if len(tr.Base.Watched) > 0 {
		watched = "watches " + strings.Join(tr.Base.Watched, ", ")
	}
	fmt.Fprintf(w, "base\t%s\tscope %s, %s; %s\n", onOff(tr.Base.Enabled), tr.Base.Scope, tr.Base.Patch, watched)
	fmt.Fprintf(w, "manual\t%s\n", onOff(tr.Manual.Enabled))
	if len(tr.Schedule.Schedules) == 0 {
		fmt.Fprintf(w, "schedule\tnone\n")
	}
	for _, s := range tr.Schedule.Schedules {
		fmt.Fprintf(w, "schedule\t%s\t%q in %s, catchUp %s\n", s.Name, s.Cron, s.Timezone, s.CatchUp)
		next := make([]string, len(s.Next))
		for i, t := range s.Next {
			next[i] = t.Format("2006-01-02 15:04:05 -07:00")
		}
		fmt.Fprintf(w, "\tnext\t%s\n", strings.Join(next, ", "))
		if s.LastRun != "" {
			fmt.Fprintf(w, "\tlast\t%s %s, due %s\n", s.LastRun, s.LastState, s.LastDue.Format("2006-01-02 15:04:05 -07:00"))
		} else {
			fmt.Fprintf(w, "\tlast\tnone yet\n")
		}
	}
}

// printBaseTags writes the baseTags section: one line per entry.
func printBaseTags(w *tabwriter.Writer, tr api.TaskTriggers) {
	if len(tr.BaseTags.Entries) == 0 {
		fmt.Fprintf(w, "base-tags\tnone\n")
	}
	for _, e := range tr.BaseTags.Entries {
		action := e.Action
		if action == "" {
			action = "rebuild"
		}
		newest := "not listed yet"
		if e.Newest != "" {
			newest = "newest " + e.Newest
		}
		line := fmt.Sprintf("base-tags\t%s %s\t%s; %s", e.Repository, e.Semver, action, newest)
		switch {
		case e.Arg != "" && e.Current != "":
			line += fmt.Sprintf("; %s=%s", e.Arg, e.Current)
		case e.Arg != "":
			line += fmt.Sprintf("; %s as the Dockerfile's ARG default", e.Arg)
		}
		if e.LastError != "" {
			line += "; listing failed: " + e.LastError
		}
		fmt.Fprintln(w, line)
	}
}

// deliveryLine says what the last delivery from one source got, e.g.
// "github 2026-11-30 02:10:11 refs/heads/main 1a2b3c4d 202: 1 run(s)
// queued or joined for refs/heads/main (r-7)".
func deliveryLine(d api.GitDelivery) string {
	line := d.Source + " " + d.At.Local().Format("2006-01-02 15:04:05")
	if d.Ref != "" {
		line += " " + d.Ref
	}
	if d.SHA != "" {
		line += fmt.Sprintf(" %.8s", d.SHA)
	}
	if d.Status != 0 {
		line += fmt.Sprintf(" %d", d.Status)
	}
	line += ": " + d.Message
	if len(d.Runs) > 0 {
		line += " (" + strings.Join(d.Runs, ", ") + ")"
	}
	return line
}

// orAll joins list, or says what an empty one means.
func orAll(list []string, empty string) string {
	if len(list) == 0 {
		return empty
	}
	return strings.Join(list, ", ")
}

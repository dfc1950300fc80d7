package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/spf13/cobra"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
)

func newRunCmd(g *globals) *cobra.Command {
	var wait bool
	var progress string
	cmd := &cobra.Command{
		Use:   "run TASK",
		Short: "Queue a manual run of a task",
		Long: `Queue a run of TASK (cause: manual, by the token's user). With --wait, follow
its build log live on stderr (like docker buildx: an interactive display on a
terminal, plain text otherwise), print the outcome on stdout and exit 1 if
the run does not succeed.`,
		Example: `  refit run api
  refit run api --wait
  refit run api --wait --progress plain`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			run, err := c.Run(cmd.Context(), a[0])
			if err != nil {
				return serverSaid(err, "queuing run of %s", a[0])
			}
			id := run.ID
			if !wait {
				return g.print(run, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "run %s queued (follow it: refit logs %s -f)\n", id, id)
				})
			}
			fmt.Fprintf(os.Stderr, "run %s queued\n", id)
			return followRun(cmd.Context(), g, c, id, progress, os.Stderr, false)
		},
	}
	cmd.Flags().BoolVarP(&wait, "wait", "w", false, "follow the build log and wait for the run to end")
	cmd.Flags().StringVar(&progress, "progress", "auto", "log display: auto, tty, plain, rawjson")
	return cmd
}

// followRun renders the run's log on w until the run ends, prints its
// outcome and returns exitError(1) unless it succeeded. With ndjson the
// log is the API's stream of chunks and no outcome follows it (it would
// not be one more chunk).
func followRun(ctx context.Context, g *globals, c *client.Client, id, progress string, w io.Writer, ndjson bool) error {
	if err := renderLogs(ctx, c, id, true, progress, w, ndjson); err != nil {
		return err
	}
	run, err := c.GetRun(ctx, id)
	if err != nil {
		return err
	}
	if !ndjson {
		if err := g.print(run, func(w *tabwriter.Writer) { fmt.Fprintln(w, outcome(run)) }); err != nil {
			return err
		}
	}
	if run.State != api.StateSucceeded && run.State != api.StateAwaitingApproval {
		return exitError(1)
	}
	return nil
}

func outcome(r api.Run) string {
	id := r.ID
	switch r.State {
	case api.StateSucceeded:
		s := fmt.Sprintf("run %s succeeded: %s", id, r.Image)
		for _, b := range r.Bases {
			if b.Role == "runtime" {
				s += fmt.Sprintf(" (base %s@%.19s…)", b.Ref, b.Digest)
			}
		}
		return s
	case api.StateAwaitingApproval:
		return fmt.Sprintf("run %s built %s and awaits approval (refit approve %s, or refit reject %s)", id, r.Image, id, id)
	case api.StateFailed, api.StateCanceled, api.StateRejected, api.StateSuperseded:
		msg := fmt.Sprintf("run %s %s", id, r.State)
		if r.Step != "" {
			msg += " at step " + r.Step
		}
		return msg + ": " + r.Error
	}
	return fmt.Sprintf("run %s is %s", id, r.State)
}

// renderLogs shows a run's log on w with BuildKit's progress display
// (mode auto, tty, plain or rawjson; tty on something that is not a
// terminal falls back to plain, as docker buildx does). With ndjson it
// writes the API's NDJSON stream of chunks instead.
func renderLogs(ctx context.Context, c *client.Client, id string, follow bool, mode string, w io.Writer, ndjson bool) error {
	if ndjson {
		enc := json.NewEncoder(w)
		return c.Logs(ctx, id, follow, func(ch api.LogChunk) error { return enc.Encode(ch) })
	}
	if mode == "rawjson" {
		return c.Logs(ctx, id, follow, func(ch api.LogChunk) error {
			_, err := fmt.Fprintf(w, "%s\n", ch.Data)
			return err
		})
	}
	d, err := progressui.NewDisplay(w, progressui.DisplayMode(mode))
	if err != nil && mode == string(progressui.TtyMode) {
		d, err = progressui.NewDisplay(w, progressui.PlainMode)
	}
	if err != nil {
		return fmt.Errorf("--progress %s: want auto, tty, plain or rawjson", mode)
	}
	ch := make(chan *bkclient.SolveStatus)
	done := make(chan error, 1)
	go func() {
		_, err := d.UpdateFrom(context.WithoutCancel(ctx), ch)
		done <- err
	}()
	err = c.Logs(ctx, id, follow, func(chunk api.LogChunk) error {
		var s bkclient.SolveStatus
		if err := json.Unmarshal(chunk.Data, &s); err != nil {
			return fmt.Errorf("decoding log chunk %d: %w", chunk.Seq, err)
		}
		select {
		case ch <- &s:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(ch)
	<-done
	return err
}

func newLogsCmd(g *globals) *cobra.Command {
	var follow bool
	var progress string
	cmd := &cobra.Command{
		Use:   "logs RUN",
		Short: "Show a run's build log (BuildKit progress)",
		Long: `Show a run's build log on stdout, rendered like 'docker buildx build' does:
an interactive display on a terminal, plain text otherwise (--progress tty
without a terminal is plain too). With -f, follow a run that is still
building until it ends, then print its outcome and exit 1 unless it
succeeded. With -o json, write the log as the API serves it: one JSON
object per line, {"seq":N,"data":<BuildKit SolveStatus>}.`,
		Example: `  refit logs r-7
  refit logs r-7 > build.log
  refit logs r-7 -f
  refit logs r-7 -o json | jq .data.logs
  refit logs r-7 --progress rawjson | jq .`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if follow {
				return followRun(cmd.Context(), g, c, a[0], progress, g.out, g.output == "json")
			}
			return renderLogs(cmd.Context(), c, a[0], false, progress, g.out, g.output == "json")
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log until the run ends")
	cmd.Flags().StringVar(&progress, "progress", "auto", "log display: auto, tty, plain, rawjson")
	return cmd
}

func newRunsCmd(g *globals) *cobra.Command {
	var f api.RunFilter
	var state string
	cmd := &cobra.Command{
		Use:   "runs [RUN]",
		Short: "List runs, newest first (or show one run)",
		Long: `List runs, newest first, or show one run. --task names a task that exists
or once existed (a deleted task's runs stay in the record); another name is
an error, not an empty list.`,
		Example: `  refit runs
  refit runs --task api
  refit runs r-7 -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if len(a) == 1 {
				r, err := c.GetRun(cmd.Context(), a[0])
				if err != nil {
					return err
				}
				return g.print(r, func(w *tabwriter.Writer) { printRun(w, r) })
			}
			f.State = api.RunState(state)
			runs, err := c.ListRuns(cmd.Context(), f)
			if err != nil {
				return err
			}
			return g.print(runs, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "RUN\tTASK\tSTATUS\tTRIGGER\tSTARTED\tDURATION")
				for _, r := range runs {
					started, dur := "-", "-"
					if !r.StartedAt.IsZero() {
						started = r.StartedAt.Local().Format("2006-01-02 15:04:05")
						end := r.FinishedAt
						if end.IsZero() {
							end = time.Now()
						}
						dur = end.Sub(r.StartedAt).Round(100 * time.Millisecond).String()
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Task, r.State, r.Cause, started, dur)
				}
			})
		},
	}
	cmd.Flags().StringVar(&f.Task, "task", "", "only runs of this task")
	cmd.Flags().StringVar(&state, "state", "", "only runs in this state (queued, running, succeeded, failed, canceled, skipped)")
	cmd.Flags().IntVar(&f.Limit, "limit", 50, "at most this many runs")
	return cmd
}

func printRun(w *tabwriter.Writer, r api.Run) {
	fmt.Fprintf(w, "run\t%s\n", r.ID)
	fmt.Fprintf(w, "task\t%s\n", r.Task)
	fmt.Fprintf(w, "state\t%s\n", r.State)
	fmt.Fprintf(w, "cause\t%s\n", r.Cause)
	if r.Cause.Kind == "commit" && r.Cause.Author != "" {
		fmt.Fprintf(w, "author\t%s\n", r.Cause.Author)
	}
	if subject, _, _ := strings.Cut(r.Cause.Message, "\n"); subject != "" {
		fmt.Fprintf(w, "message\t%s\n", subject)
	}
	for _, a := range r.Cause.Also {
		fmt.Fprintf(w, "also\t%s\n", a)
	}
	if r.Commit != "" {
		fmt.Fprintf(w, "commit\t%s\n", r.Commit)
	}
	for _, b := range r.Bases {
		fmt.Fprintf(w, "base\t%s %s@%s (stage %s)\n", b.Role, b.Ref, b.Digest, b.Stage)
	}
	if r.Image != "" {
		fmt.Fprintf(w, "image\t%s\n", r.Image)
		fmt.Fprintf(w, "tags\t%s\n", strings.Join(r.Tags, ", "))
	}
	if r.Error != "" {
		fmt.Fprintf(w, "error\t%s: %s\n", r.Step, r.Error)
	}
	fmt.Fprintf(w, "queued\t%s\n", r.CreatedAt.Local().Format(time.RFC3339))
	if !r.FinishedAt.IsZero() {
		fmt.Fprintf(w, "finished\t%s (%s)\n", r.FinishedAt.Local().Format(time.RFC3339), r.Timings["total"])
	}
}

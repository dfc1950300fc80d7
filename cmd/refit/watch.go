package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/refit-dev/refit/internal/api"
)

func newWatchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "watch",
		Aliases: []string{"watches"},
		Short:   "Watch image references that no task builds on (events only, no runs)",
		Long: `A watched reference is polled like a base image, with one HEAD per interval
however many watch or build on it, and takes registry webhooks; when its tag
moves to a new digest refit emits a base.updated event. With --semver, new
tags of its repository matching the range (newer than any seen before;
pre-releases only with --prerelease) emit base.tagged events. A watch never
queues a run. A repository without tag and with --semver watches only its
tags. Subscribe to the events with 'refit subscriptions create'.`,
	}
	var semver string
	var prerelease bool
	add := &cobra.Command{
		Use:   "add REF [--semver RANGE] [--prerelease]",
		Short: "Watch a reference (adding it again changes its range)",
		Example: `  refit watch add docker.io/library/debian:12
  refit watch add python:3.12 --semver "~3.12"     # the tag's digest and new 3.12.x tags
  refit watch add docker.io/library/node --semver "^22"   # tags only`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.AddWatch(cmd.Context(), api.WatchRequest{Ref: a[0], Semver: semver, Prerelease: prerelease})
			if err != nil {
				return err
			}
			return g.print(res, func(w *tabwriter.Writer) {
				verb := "updated"
				if res.Created {
					verb = "added"
				}
				fmt.Fprintf(w, "watch %s %s\n", res.Watch.Ref, verb)
			})
		},
	}
	add.Flags().StringVar(&semver, "semver", "", `follow new tags of the repository matching this range ("~3.12", ">=1.25 <2")`)
	add.Flags().BoolVar(&prerelease, "prerelease", false, "count pre-release (and suffixed) tags too")
	list := &cobra.Command{
		Use:   "list",
		Short: "List watched references",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ws, err := c.ListWatches(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(ws, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "REF\tDIGEST\tSEMVER\tADDED")
				for _, x := range ws {
					digest, sv := "no (tags only)", "-"
					if x.ByDigest {
						digest = "yes"
					}
					if x.Semver != "" {
						sv = x.Semver
						if x.Prerelease {
							sv += " (+prerelease)"
						}
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", x.Ref, digest, sv, x.CreatedAt.Local().Format("2006-01-02 15:04:05"))
				}
			})
		},
	}
	remove := &cobra.Command{
		Use:     "remove REF",
		Aliases: []string{"rm"},
		Short:   "Stop watching a reference",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.RemoveWatch(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "watch %s removed\n", a[0])
			return nil
		},
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}

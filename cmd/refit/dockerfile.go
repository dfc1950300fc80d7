package main

import (
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/refit-dev/refit/internal/dockerfile"
)

func newDockerfileCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dockerfile",
		Short: "Inspect Dockerfiles offline",
	}
	var args []string
	var target string
	bases := &cobra.Command{
		Use:   "bases PATH",
		Short: "List the base images a Dockerfile builds on",
		Long: `List every image a Dockerfile uses — each stage's FROM, COPY --from and
RUN --mount from= images — normalized the way Docker does
(debian → docker.io/library/debian:latest), with its stage and role:
"runtime" is the base of the final image, "build" is used only while
building. Works offline; PATH may be a Dockerfile or a directory holding one.`,
		Example: `  refit dockerfile bases ./Dockerfile
  refit dockerfile bases . --build-arg GO_VERSION=1.23 --target final -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			path := a[0]
			if fi, err := os.Stat(path); err == nil && fi.IsDir() {
				path = filepath.Join(path, "Dockerfile")
			}
			ba, err := parseKV("--build-arg", args)
			if err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			res, err := dockerfile.Parse(f, dockerfile.Options{BuildArgs: ba, Target: target})
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			return g.print(res.Bases, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "STAGE\tROLE\tKIND\tREFERENCE\tPLATFORM")
				for _, b := range res.Bases {
					p := b.Platform
					if p == "" {
						p = "-"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", b.Stage, b.Role, b.Kind, b.Ref, p)
				}
			})
		},
	}
	bases.Flags().StringArrayVar(&args, "build-arg", nil, "build argument KEY=VALUE (repeatable)")
	bases.Flags().StringVar(&target, "target", "", "stage to build (default: the last)")
	cmd.AddCommand(bases)
	return cmd
}

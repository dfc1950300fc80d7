package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/refit-dev/refit/internal/api"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Show what is installed in an image, and what changed between two",
		Long: `Read an image's OS release and OS packages (dpkg, apk, rpm) from its registry —
refit streams the layers from the top and stops once it has found the
package database, and keeps one catalog per image digest — or compare two
images: OS release, packages added, removed and changed, config, layers.`,
	}
	var platform string
	packages := &cobra.Command{
		Use:   "packages IMAGE",
		Short: "List the OS release and OS packages of an image",
		Example: `  refit image packages docker.io/library/debian:12
  refit image packages alpine:3.19 --platform linux/arm64 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cat, err := c.ImagePackages(cmd.Context(), a[0], platform)
			if err != nil {
				return err
			}
			return g.print(cat, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "image\t%s\n", cat.Digest)
				fmt.Fprintf(w, "os\t%s\n", orDash(osName(cat.OS)))
				fmt.Fprintf(w, "database\t%s\n", orDash(strings.Join(cat.DB, ", ")))
				fmt.Fprintf(w, "read\t%d of %d layers, %s of %s\n\n", cat.Read.LayersRead, cat.Layers, size(cat.Read.Bytes), size(cat.Size))
				fmt.Fprintln(w, "PACKAGE\tVERSION\tARCH\tTYPE")
				for _, p := range cat.Packages {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.Name, p.Version, orDash(p.Arch), p.Type)
				}
			})
		},
	}
	packages.Flags().StringVar(&platform, "platform", "", "the platform of a multi-platform image (default linux/amd64)")
	diff := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "Show what changed from one image to another",
		Example: `  refit image diff debian@sha256:0123… debian:12
  refit image diff registry.example/app:1.4 registry.example/app:1.5 -o json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.ImageDiff(cmd.Context(), a[0], a[1], platform)
			if err != nil {
				return err
			}
			return g.print(d, func(w *tabwriter.Writer) { printDiff(w, d) })
		},
	}
	diff.Flags().StringVar(&platform, "platform", "", "the platform of multi-platform images (default linux/amd64)")
	cmd.AddCommand(packages, diff)
	return cmd
}

func newBasesDiffCmd(g *globals) *cobra.Command {
	var platform string
	cmd := &cobra.Command{
		Use:   "diff REFERENCE [OLD NEW]",
		Short: "Show what changed in a base update: OS release, packages, config, layers",
		Long: `Show what changed when a base reference moved: by default its last change
(per platform: --platform picks one), or between two of its platform
manifest digests (see 'refit bases history REFERENCE'). refit computes the
diff of every update as soon as it sees it; this shows the stored one. A
platform new to the reference shows as "new platform", its packages added.`,
		Example: `  refit bases diff docker.io/library/debian:12
  refit bases diff debian:12 sha256:0123… sha256:4567…`,
		Args: func(cmd *cobra.Command, a []string) error {
			if len(a) != 1 && len(a) != 3 {
				return fmt.Errorf("want REFERENCE, or REFERENCE OLD NEW (digests); got %d arguments", len(a))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var old, new string
			if len(a) == 3 {
				old, new = a[1], a[2]
			}
			d, err := c.BaseDiff(cmd.Context(), a[0], old, new, platform)
			if err != nil {
				return err
			}
			return g.print(d, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "base\t%s", d.Ref)
				if d.Platform != "" {
					fmt.Fprintf(w, " (%s)", d.Platform)
				}
				if !d.SeenAt.IsZero() {
					fmt.Fprintf(w, ", moved %s", d.SeenAt.Local().Format("2006-01-02 15:04"))
				}
				fmt.Fprintln(w)
				printDiff(w, d.Diff)
			})
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "the platform (default: the last change's)")
	return cmd
}

// printDiff writes a diff as a user reads it, one change a line.
func printDiff(w *tabwriter.Writer, d api.ImageDiff) {
	if d.NewPlatform {
		fmt.Fprintf(w, "from\tnew platform → %s\n", short(d.New))
	} else {
		fmt.Fprintf(w, "from\t%s → %s\n", short(d.Old), short(d.New))
	}
	if d.OS != nil {
		fmt.Fprintf(w, "os\t%s → %s\n", orDash(osName(d.OS.Old)), orDash(osName(d.OS.New)))
	}
	if len(d.Changed)+len(d.Added)+len(d.Removed) == 0 {
		fmt.Fprintln(w, "packages\tno change")
	}
	for _, p := range d.Changed {
		fmt.Fprintf(w, "changed\t%s%s %s → %s\n", p.Name, arch(p.Arch), p.Old, p.New)
	}
	for _, p := range d.Added {
		fmt.Fprintf(w, "added\t%s%s %s\n", p.Name, arch(p.Arch), p.Version)
	}
	for _, p := range d.Removed {
		fmt.Fprintf(w, "removed\t%s%s %s\n", p.Name, arch(p.Arch), p.Version)
	}
	for _, c := range d.Config {
		fmt.Fprintf(w, "config\t%s: %q → %q\n", c.Field, c.Old, c.New)
	}
	l := d.Layers
	fmt.Fprintf(w, "layers\t%d → %d (%s → %s)\n", l.OldCount, l.NewCount, size(l.OldSize), size(l.NewSize))
	if v := d.Vulns; v != nil {
		for _, x := range v.Fixes {
			fmt.Fprintf(w, "fixes\t%s (%s) in %s\n", x.ID, x.Severity, x.Package)
		}
		for _, x := range v.Introduces {
			fmt.Fprintf(w, "introduces\t%s (%s) in %s\n", x.ID, x.Severity, x.Package)
		}
		for _, x := range v.Unchecked {
			fmt.Fprintf(w, "unchecked\t%s\n", x)
		}
	}
}

func osName(o api.OSRelease) string {
	if o.ID == "" {
		return ""
	}
	return strings.TrimSpace(o.ID + " " + o.VersionID)
}

func arch(a string) string {
	if a == "" {
		return ""
	}
	return " (" + a + ")"
}

// size renders a byte count: "512 B", "3.4 MB".
func size(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

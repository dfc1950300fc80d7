package main

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/refit-dev/refit/internal/api"
)

func newVulnDBCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vulndb",
		Short: "Load and inspect the offline vulnerability database (OSV exports)",
		Long: `refit names the vulnerabilities a base image update fixes and introduces from
an offline copy of OSV advisories; it never reaches the network for them.
Load the export OSV publishes per ecosystem — the file all.zip of each of
Debian, Ubuntu, Alpine, Rocky Linux, AlmaLinux, Red Hat, … — with 'refit vulndb
import', and refresh it the same way: each import replaces the whole
database, all or nothing, so give every export you want at once:
refit vulndb import debian-all.zip alpine-all.zip.`,
	}
	imp := &cobra.Command{
		Use:   "import FILE...",
		Short: "Replace the vulnerability database with OSV exports (zips of OSV JSON records)",
		Long: `Replace the vulnerability database with one or more OSV exports: the zip of
JSON records OSV publishes per ecosystem (all.zip). Several files are
merged (their records copied, not recompressed, into one zip) and
imported together; the server replaces its whole database with them in
one transaction, or refuses them all and keeps what it had.`,
		Example: `  refit vulndb import debian-all.zip
  refit vulndb import debian-all.zip alpine-all.zip -o json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			path := a[0]
			if len(a) > 1 {
				merged, err := mergeZips(a)
				if err != nil {
					return err
				}
				defer os.Remove(merged)
				path = merged
			}
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("opening the OSV export: %w", err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return fmt.Errorf("opening the OSV export: %w", err)
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%s is not a file (want the OSV export's zip)", path)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.ImportVulnDB(cmd.Context(), io.Reader(f), fi.Size())
			if err != nil {
				return err
			}
			if g.output != "json" {
				fmt.Fprintf(g.out, "imported %d advisories from %s (%d skipped: withdrawn, or of ecosystems refit cannot match)\n", st.Advisories, strings.Join(a, ", "), st.Skipped)
			}
			return printVulnDB(g, st)
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show what the vulnerability database holds per ecosystem, and how old it is",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.VulnDBStatus(cmd.Context())
			if err != nil {
				return err
			}
			if !st.Imported && g.output != "json" {
				fmt.Fprintln(g.out, "no vulnerability database imported: base image diffs name no vulnerabilities.\nLoad OSV's export of your distributions (all.zip per ecosystem) with: refit vulndb import FILE")
				return nil
			}
			return printVulnDB(g, st)
		},
	}
	cmd.AddCommand(imp, status)
	return cmd
}

// mergeZips copies the files of the zips at paths into one temporary
// zip, as they are (compressed), and returns its path. The server checks
// what they hold.
func mergeZips(paths []string) (string, error) {
	out, err := os.CreateTemp("", "refit-vulndb-*.zip")
	if err != nil {
		return "", fmt.Errorf("merging the OSV exports: %w", err)
	}
	err = func() error {
		zw := zip.NewWriter(out)
		for _, p := range paths {
			zr, err := zip.OpenReader(p)
			if err != nil {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			for _, f := range zr.File {
				if err := zw.Copy(f); err != nil {
					zr.Close()
					return fmt.Errorf("copying %s from %s: %w", f.Name, p, err)
				}
			}
			zr.Close()
		}
		return errors.Join(zw.Close(), out.Close())
	}()
	if err != nil {
		out.Close()
		os.Remove(out.Name())
		return "", fmt.Errorf("merging the OSV exports: %w", err)
	}
	return out.Name(), nil
}

// printVulnDB prints the database's status: the JSON, or a table of
// ecosystems and a line saying when it was imported and how fresh its
// data is.
func printVulnDB(g *globals, st api.VulnDBStatus) error {
	if g.output != "json" && g.output != "table" && g.output != "" {
		return errors.New("unknown output format " + g.output + " (want table or json)")
	}
	now := time.Now()
	err := g.print(st, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "ECOSYSTEM\tADVISORIES\tPACKAGES\tNEWEST ADVISORY")
		for _, e := range st.Ecosystems {
			fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", e.Ecosystem, e.Advisories, e.Packages, dayAge(e.NewestModified, now))
		}
	})
	if err != nil || g.output == "json" {
		return err
	}
	fmt.Fprintf(g.out, "\nimported %s (%s), %d advisories, %d skipped; newest advisory %s; file sha256:%.12s…, %d bytes\n",
		st.ImportedAt.Local().Format("2006-01-02 15:04"), ago(now.Sub(st.ImportedAt)), st.Advisories, st.Skipped,
		dayAge(st.NewestModified, now), st.SHA256, st.Size)
	return nil
}

// dayAge says a date and its age: "2026-11-21 (9 days ago)".
func dayAge(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", t.Local().Format("2006-01-02"), ago(now.Sub(t)))
}

// ago says a duration in the past as people do: "just now", "5 minutes
// ago", "3 hours ago", "9 days ago".
func ago(d time.Duration) string {
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, unit)
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return plural(int(d/(24*time.Hour)), "day")
}

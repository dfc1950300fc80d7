package main

import (
	"cmp"
	"fmt"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// buildkitModule is the module whose version `refit version` reports: the
// BuildKit client refit speaks, and the buildkitd `make deps` builds.
const buildkitModule = "github.com/moby/buildkit"

// versionInfo is what `refit version` prints, read from the binary's build
// information.
type versionInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	BuildKit string `json:"buildkit"`
}

// readVersion reads the version from the binary: the module version when
// it was installed as a module, else "devel"; the VCS revision it was built
// from (and whether the tree had changes); Go's and BuildKit's versions.
func readVersion() versionInfo {
	v := versionInfo{Version: "devel", Go: "unknown", BuildKit: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	for _, d := range bi.Deps {
		if d.Path == buildkitModule {
			v.BuildKit = cmp.Or(d.Version, v.BuildKit)
		}
	}
	return v
}

// String is the one-line form `refit --version` prints.
func (v versionInfo) String() string {
	s := v.Version
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += " (commit " + c
		if v.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return fmt.Sprintf("%s, %s, BuildKit %s", s, v.Go, v.BuildKit)
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print refit's version, commit, Go and BuildKit versions",
		Long: `Print the version of this refit binary: its release (or "devel" for a
build from a checkout), the commit it was built from, and the Go and
BuildKit module versions it was built with. Needs no server.

  refit version
  refit version -o json
  refit --version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := readVersion()
			return g.print(v, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "version\t%s\n", v.Version)
				if v.Commit != "" {
					mod := ""
					if v.Modified {
						mod = " (with uncommitted changes)"
					}
					fmt.Fprintf(w, "commit\t%s%s\n", v.Commit, mod)
				}
				fmt.Fprintf(w, "go\t%s\n", v.Go)
				fmt.Fprintf(w, "buildkit\t%s\n", v.BuildKit)
			})
		},
	}
}

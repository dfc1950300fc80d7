package main

import (
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/refit-dev/refit/internal/api"
)

// A platform new to a reference prints as new, its packages added.
func TestPrintDiffNewPlatform(t *testing.T) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	printDiff(w, api.ImageDiff{New: "sha256:" + strings.Repeat("7", 64), NewPlatform: true,
		OS:     &api.OSChange{New: api.OSRelease{ID: "debian", VersionID: "12"}},
		Added:  []api.Package{{Name: "bash", Version: "5.2.15-2+b2", Arch: "arm64", Type: "deb"}},
		Layers: api.LayerChange{NewCount: 1, NewSize: 2000}})
	w.Flush()
	got := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{"from new platform → sha256:777777777777", "os - → debian 12", "added bash (arm64) 5.2.15-2+b2"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

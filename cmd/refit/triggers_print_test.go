package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/refit-dev/refit/internal/api"
)

// TestPrintTriggersDeliveries: under the commit section, `refit task
// triggers` prints a "last" line per source with when, ref, short commit,
// HTTP status (none for polling), verdict and runs.
func TestPrintTriggersDeliveries(t *testing.T) {
	at := time.Date(2026, 11, 30, 2, 10, 11, 0, time.Local)
	tr := api.TaskTriggers{Task: "api", Commit: api.CommitSection{Enabled: true, Repo: "https://git.example.com/acme/api", Ref: "main",
		Deliveries: []api.GitDelivery{
			{Source: "github", At: at, Ref: "refs/heads/main", SHA: "1a2b3c4d5e6f" + strings.Repeat("0", 28), Status: 202,
				Message: "1 run(s) queued or joined for refs/heads/main", Runs: []string{"r-7"}},
			{Source: "gitlab", At: at, Ref: "refs/heads/main", SHA: strings.Repeat("e", 40), Status: 401, Message: "refused: the signature does not verify"},
			{Source: "poll", At: at, Ref: "refs/heads/main", SHA: strings.Repeat("b", 40),
				Message: "no task builds refs/heads/main: api: no changed file is under triggers.commit.paths [svc/**]"},
		}}}
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	printTriggers(w, tr)
	w.Flush()
	out := regexp.MustCompile(`[ \t]+`).ReplaceAllString(b.String(), " ")
	for _, want := range []string{
		" last github 2026-11-30 02:10:11 refs/heads/main 1a2b3c4d 202: 1 run(s) queued or joined for refs/heads/main (r-7)\n",
		" last gitlab 2026-11-30 02:10:11 refs/heads/main eeeeeeee 401: refused: the signature does not verify\n",
		" last poll 2026-11-30 02:10:11 refs/heads/main bbbbbbbb: no task builds refs/heads/main: api: no changed file is under triggers.commit.paths [svc/**]\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("triggers output lacks %q:\n%s", want, b.String())
		}
	}
}

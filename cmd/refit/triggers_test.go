package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
)

// TestScheduleAndTriggersCLI: through a real `refit serve`, a task with
// an "@every 2s" schedule applies (a second apply changes nothing), gets a run whose cause names the schedule and
// its tick, and `refit task triggers` shows every section: commit (off,
// a dir source), base, manual, and each schedule with its next three due
// times in its zone and its last run; -o json gives the same as the API.
func TestScheduleAndTriggersCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startProcess(t, bin, data, apiAddr, reg)
	token := readToken(t, data)

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("FROM scratch\nCOPY Dockerfile /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "tasks.yaml")
	if err := os.WriteFile(file, []byte(`name: app
source: {dir: ./app}
triggers:
  manual: true
  schedule:
    - {name: tick, cron: "@every 2s", catchUp: skip}
    - {name: weekly, cron: "0 3 * * 1", timezone: Europe/Berlin}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"created", "unchanged"} { // the schedules hash alike
		if out, stderr, err := cli(t, bin, apiAddr, token, "", "apply", "-f", file); err != nil || !strings.Contains(out, "task app "+want) {
			t.Fatalf("apply: %v\n%s%s\nwant app %s", err, out, stderr, want)
		}
	}

	// The tick falls due within 2 s; its run is recorded with its cause.
	c := client.New("http://"+apiAddr, token)
	var run api.Run
	deadline := time.Now().Add(30 * time.Second)
	for run.ID == "" {
		runs, err := c.ListRuns(context.Background(), api.RunFilter{Task: "app"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.Cause.Kind == "schedule" {
				run = r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled run 30 s after applying an @every 2s schedule; runs: %+v", runs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cs := run.Cause; cs.ScheduleName != "tick" || cs.Schedule != "@every 2s" || cs.DueAt.IsZero() {
		t.Errorf("scheduled run's cause = %+v, want schedule tick, @every 2s, with its due time", cs)
	}

	out, stderr, err := cli(t, bin, apiAddr, token, "", "task", "triggers", "app")
	if err != nil {
		t.Fatalf("task triggers: %v\n%s", err, stderr)
	}
	// Columns are compared with their padding squeezed to one space: a
	// section added later may widen them.
	squeezed := regexp.MustCompile(`[ \t]+`).ReplaceAllString(out, " ")
	for _, want := range []string{
		"commit", "(a source.dir has no commits)", "base", "scope runtime, rebuild", "manual on",
		`tick "@every 2s" in UTC, catchUp skip`,
		`weekly "0 3 * * 1" in Europe/Berlin, catchUp once`,
		" 03:00:00 +01:00, ", // the weekly's next times, in Berlin winter time
		"none yet",           // the weekly's last run
	} {
		if !strings.Contains(squeezed, want) {
			t.Errorf("task triggers output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`\n\s+last\s+r-\d+ \w+, due 20`).MatchString(out) {
		t.Errorf("task triggers output shows no last run of tick:\n%s", out)
	}

	out, stderr, err = cli(t, bin, apiAddr, token, "", "task", "triggers", "app", "-o", "json")
	if err != nil {
		t.Fatalf("task triggers -o json: %v\n%s", err, stderr)
	}
	var tr api.TaskTriggers
	if err := json.Unmarshal([]byte(out), &tr); err != nil {
		t.Fatalf("task triggers -o json is not TaskTriggers: %v\n%s", err, out)
	}
	if tr.Task != "app" || tr.Commit.Enabled || !tr.Manual.Enabled || len(tr.Schedule.Schedules) != 2 {
		t.Fatalf("triggers = %+v, want app: commit off, manual on, two schedules", tr)
	}
	weekly := tr.Schedule.Schedules[1]
	if len(weekly.Next) != 3 {
		t.Fatalf("weekly next = %v, want 3 times", weekly.Next)
	}
	for i, n := range weekly.Next {
		berlin, _ := time.LoadLocation("Europe/Berlin")
		if b := n.In(berlin); b.Weekday() != time.Monday || b.Hour() != 3 || b.Minute() != 0 {
			t.Errorf("weekly next[%d] = %s, want a Monday 03:00 in Berlin", i, n)
		}
		if i > 0 && !n.After(weekly.Next[i-1]) {
			t.Errorf("weekly next times not increasing: %v", weekly.Next)
		}
	}
	if tick := tr.Schedule.Schedules[0]; tick.LastRun == "" || tick.LastDue.IsZero() || weekly.LastRun != "" {
		t.Errorf("last runs: tick %q at %s, weekly %q; want tick's last run and none for weekly", tick.LastRun, tick.LastDue, weekly.LastRun)
	}

	if _, stderr, err := cli(t, bin, apiAddr, token, "", "task", "triggers", "nope"); err == nil || !strings.Contains(stderr, "nope") {
		t.Errorf("task triggers of a missing task: %v, stderr %q; want an error naming it", err, stderr)
	}
}

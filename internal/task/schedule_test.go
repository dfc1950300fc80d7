package task_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refit-dev/refit/internal/task"
)

// TestScheduleYAML: the list form decodes with its fields, the old string
// form is one schedule named "default", and defaults fill zone and
// catch-up.
func TestScheduleYAML(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       task.Schedules
	}{
		{"list", `
name: api
source: {git: https://example.com/api.git}
triggers:
  schedule:
    - {name: weekly, cron: "0 3 * * 1", timezone: Europe/Berlin, catchUp: skip}
    - {name: daily, cron: "@daily"}
`, task.Schedules{
			{Name: "weekly", Cron: "0 3 * * 1", Timezone: "Europe/Berlin", CatchUp: "skip"},
			{Name: "daily", Cron: "@daily", Timezone: "UTC", CatchUp: "once"},
		}},
		{"old string form", `
name: api
source: {git: https://example.com/api.git}
triggers: {schedule: "0 3 * * 1"}
`, task.Schedules{{Name: "default", Cron: "0 3 * * 1", Timezone: "UTC", CatchUp: "once"}}},
		{"empty string", `
name: api
source: {git: https://example.com/api.git}
triggers: {schedule: ""}
`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := task.DecodeYAML([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			s := specs[0].Defaults()
			if err := s.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if diff := cmp.Diff(tt.want, s.Triggers.Schedule); diff != "" {
				t.Errorf("schedules (-want +got):\n%s", diff)
			}
		})
	}
}

// TestScheduleHashOldForm: the string form and the list it stands for
// hash alike, so re-applying an old file over a stored list (or the
// reverse) changes nothing.
func TestScheduleHashOldForm(t *testing.T) {
	old, err := task.DecodeYAML([]byte("name: api\nsource: {git: g}\ntriggers: {manual: true, schedule: '@daily'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := task.DecodeYAML([]byte("name: api\nsource: {git: g}\ntriggers:\n  manual: true\n  schedule: [{name: default, cron: '@daily', timezone: UTC, catchUp: once}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := old[0].Hash("r"), list[0].Hash("r"); a != b {
		t.Errorf("string form hashes %s, list form %s; want equal", a, b)
	}
	if old[0].Triggers.Schedule[0].Timezone != "" {
		t.Errorf("Hash changed the caller's spec: %+v", old[0].Triggers.Schedule)
	}
}

func TestScheduleValidateBad(t *testing.T) {
	tests := []struct {
		name  string
		list  task.Schedules
		field string
	}{
		{"bad cron", task.Schedules{{Name: "a", Cron: "0 3 * *"}}, "triggers.schedule[0].cron"},
		{"six fields", task.Schedules{{Name: "a", Cron: "0 0 3 * * 1"}}, "triggers.schedule[0].cron"},
		{"empty cron", task.Schedules{{Name: "a"}}, "triggers.schedule[0].cron"},
		{"out of range", task.Schedules{{Name: "a", Cron: "61 * * * *"}}, "triggers.schedule[0].cron"},
		{"never due", task.Schedules{{Name: "a", Cron: "0 0 30 2 *"}}, "triggers.schedule[0].cron"},
		{"zone in spec", task.Schedules{{Name: "a", Cron: "CRON_TZ=UTC 0 3 * * *"}}, "triggers.schedule[0].cron"},
		{"unknown zone", task.Schedules{{Name: "a", Cron: "@daily"}, {Name: "b", Cron: "@daily", Timezone: "Mars/Olympus"}}, "triggers.schedule[1].timezone"},
		{"zone path", task.Schedules{{Name: "a", Cron: "@daily", Timezone: "../../etc/passwd"}}, "triggers.schedule[0].timezone"},
		{"bad catchUp", task.Schedules{{Name: "a", Cron: "@daily", CatchUp: "all"}}, "triggers.schedule[0].catchUp"},
		{"no name", task.Schedules{{Cron: "@daily"}}, "triggers.schedule[0].name"},
		{"duplicate name", task.Schedules{{Name: "a", Cron: "@daily"}, {Name: "a", Cron: "@hourly"}}, "triggers.schedule[1].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			s.Triggers = &task.Triggers{Schedule: tt.list}
			var fe *task.FieldError
			if err := s.Validate(); !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Validate() = %v, want a field error for %s", err, tt.field)
			}
		})
	}
}

func TestScheduleYAMLUnknownField(t *testing.T) {
	_, err := task.DecodeYAML([]byte("name: api\nsource: {git: g}\ntriggers:\n  schedule: [{name: a, cron: '@daily', tz: UTC}]\n"))
	if err == nil || !strings.Contains(err.Error(), "tz") {
		t.Fatalf("DecodeYAML = %v, want an error naming the unknown field tz", err)
	}
}

// TestScheduleNext: due times are read in the schedule's zone.
func TestScheduleNext(t *testing.T) {
	s := task.Schedule{Name: "w", Cron: "0 3 * * 1", Timezone: "Europe/Berlin"}
	from := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) // a Monday
	got := s.Next(from, 3)
	want := []string{"2026-12-07T03:00:00+01:00", "2026-12-14T03:00:00+01:00", "2026-12-21T03:00:00+01:00"}
	if len(got) != 3 {
		t.Fatalf("Next = %v, want 3 times", got)
	}
	for i := range want {
		if got[i].Format(time.RFC3339) != want[i] {
			t.Errorf("Next[%d] = %s, want %s", i, got[i].Format(time.RFC3339), want[i])
		}
	}
}

// FuzzScheduleYAML: any triggers.schedule a spec file holds decodes and
// validates without panicking, and a valid schedule has a next due time.
func FuzzScheduleYAML(f *testing.F) {
	for _, s := range []string{
		`"0 3 * * 1"`, `"@daily"`, `"@every 2s"`, `[{name: w, cron: "0 3 * * 1", timezone: Europe/Berlin, catchUp: skip}]`,
		`[{name: a, cron: "*/5 1-3 1,15 JAN-MAR MON-FRI"}]`, `[{name: a, cron: "0 0 30 2 *"}]`, `[{name: a, cron: "@every 1h30m", timezone: America/New_York}]`,
		`[{name: a, cron: "? ? ? ? ?"}]`, `{name: x}`, `[1, 2]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sched string) {
		if len(sched) > 4096 {
			return
		}
		doc := "name: api\nsource: {git: g}\ntriggers:\n  schedule: " + sched + "\n"
		specs, err := task.DecodeYAML([]byte(doc))
		if err != nil || len(specs) != 1 {
			return
		}
		s := specs[0].Defaults()
		if s.Validate() != nil {
			return
		}
		for _, e := range s.Triggers.Schedule {
			if len(e.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 1)) != 1 {
				t.Errorf("valid schedule %+v has no next due time", e)
			}
		}
	})
}

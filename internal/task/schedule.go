package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	// The zone database, for hosts without /usr/share/zoneinfo (an image
	// from scratch): a schedule's zone must mean the same everywhere.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// Schedule is one entry of triggers.schedule: run the task at the times
// Cron names, read in Timezone.
type Schedule struct {
	// Name identifies the schedule within its task (unique per task):
	// what a run's cause and `refit task triggers` show. The old string
	// form of triggers.schedule is one entry named "default".
	Name string `json:"name"`
	// Cron is a standard five-field spec ("0 3 * * 1": minute, hour,
	// day of month, month, day of week) or a descriptor (@hourly,
	// @daily, @weekly, @monthly, @yearly, @every 90m).
	Cron string `json:"cron"`
	// Timezone is an IANA zone ("Europe/Berlin") the spec's times are
	// read in. Default "UTC".
	Timezone string `json:"timezone,omitempty"`
	// CatchUp says what happens to ticks missed while refit was down:
	// "once" (default) runs one catch-up run at start, however many were
	// missed; "skip" runs none. Either way the schedule continues from
	// the next tick to come.
	CatchUp string `json:"catchUp,omitempty"`
}

// DefaultScheduleName names the one schedule of the old string form
// `schedule: "0 3 * * 1"`.
const DefaultScheduleName = "default"

// Schedules is triggers.schedule: a list of schedules, or, as written
// before lists existed, one cron spec string (one entry named
// "default"). It always encodes as a list.
type Schedules []Schedule

// UnmarshalJSON accepts a list of schedules (unknown fields are errors)
// or a cron spec string; "" and null are no schedule.
func (s *Schedules) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var spec string
		if err := json.Unmarshal(b, &spec); err != nil {
			return err
		}
		*s = nil
		if spec != "" {
			*s = Schedules{{Name: DefaultScheduleName, Cron: spec}}
		}
		return nil
	}
	var list []Schedule
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return fmt.Errorf("triggers.schedule: %w (want a list of {name, cron, timezone, catchUp} or a cron string)", err)
	}
	*s = list
	return nil
}

// cronParser reads standard five-field specs and descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse returns the schedule's cron schedule in its time zone, or an
// error saying which of the cron spec or the zone is wrong (as a
// *FieldError with the field relative to the entry: "cron", "timezone").
func (s Schedule) Parse() (cron.Schedule, error) {
	sched, _, err := s.parse()
	return sched, err
}

// parse is Parse, and also returns the zone the schedule is read in.
func (s Schedule) parse() (cron.Schedule, *time.Location, error) {
	zone := s.Timezone
	if zone == "" {
		zone = "UTC"
	}
	// A zone name is a path into the zone database: refuse the names
	// time.LoadLocation would read as something else than a zone.
	if strings.Contains(zone, "..") || strings.HasPrefix(zone, "/") || strings.ContainsAny(zone, "\\\x00") || len(zone) > 64 {
		return nil, nil, &FieldError{"timezone", fmt.Sprintf("%q is not an IANA time zone (like Europe/Berlin or UTC)", s.Timezone)}
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, nil, &FieldError{"timezone", fmt.Sprintf("%q is not a known IANA time zone (like Europe/Berlin or UTC)", s.Timezone)}
	}
	spec := strings.TrimSpace(s.Cron)
	if spec == "" {
		return nil, nil, &FieldError{"cron", "a cron spec is required (like \"0 3 * * 1\" or @daily)"}
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, nil, &FieldError{"cron", "give the zone in timezone, not in the cron spec"}
	}
	if len(spec) > 256 {
		return nil, nil, &FieldError{"cron", "longer than 256 characters"}
	}
	sched, err := cronParser.Parse(spec)
	if err != nil {
		return nil, nil, &FieldError{"cron", fmt.Sprintf("%q: %v (five fields: minute hour day-of-month month day-of-week, or @daily, @every 1h…)", s.Cron, err)}
	}
	if every, ok := sched.(cron.ConstantDelaySchedule); ok && every.Delay < time.Second {
		return nil, nil, &FieldError{"cron", fmt.Sprintf("%q: an interval under one second", s.Cron)}
	}
	switch sched := sched.(type) {
	case *cron.SpecSchedule:
		sched.Location = loc
		if sched.Next(time.Now()).IsZero() {
			// February 30th: robfig's Next gives up after five years.
			return nil, nil, &FieldError{"cron", fmt.Sprintf("%q never falls due", s.Cron)}
		}
	}
	return sched, loc, nil
}

// Next returns the schedule's next n due times after t, in its time
// zone. An invalid schedule has none.
func (s Schedule) Next(t time.Time, n int) []time.Time {
	sched, loc, err := s.parse()
	if err != nil {
		return nil
	}
	t = t.In(loc)
	var out []time.Time
	for range n {
		t = sched.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// Location returns the schedule's time zone (UTC when unset or unknown).
func (s Schedule) Location() *time.Location {
	if s.Timezone == "" {
		return time.UTC
	}
	_, loc, err := s.parse()
	if err != nil {
		return time.UTC
	}
	return loc
}

// validateSchedules checks every entry and that names are unique.
func validateSchedules(list Schedules) error {
	seen := map[string]bool{}
	for i, s := range list {
		field := fmt.Sprintf("triggers.schedule[%d]", i)
		if !nameRE.MatchString(s.Name) {
			return &FieldError{field + ".name", fmt.Sprintf("%q is not a valid schedule name (lowercase letters, digits, '.', '_', '-'; at most 63)", s.Name)}
		}
		if seen[s.Name] {
			return &FieldError{field + ".name", fmt.Sprintf("%q names two schedules of the task", s.Name)}
		}
		seen[s.Name] = true
		switch s.CatchUp {
		case "", "once", "skip":
		default:
			return &FieldError{field + ".catchUp", fmt.Sprintf("%q must be once or skip", s.CatchUp)}
		}
		if _, err := s.Parse(); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return &FieldError{field + "." + fe.Field, fe.Msg}
			}
			return &FieldError{field, err.Error()}
		}
	}
	return nil
}

// withDefaults returns a copy of the list with Timezone and CatchUp set.
func (s Schedules) withDefaults() Schedules {
	if s == nil {
		return nil
	}
	out := make(Schedules, len(s))
	for i, e := range s {
		if e.Timezone == "" {
			e.Timezone = "UTC"
		}
		if e.CatchUp == "" {
			e.CatchUp = "once"
		}
		out[i] = e
	}
	return out
}

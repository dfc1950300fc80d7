package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/attest"
	"github.com/refit-dev/refit/internal/audit"
	"github.com/refit-dev/refit/internal/catalog"
	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/plan"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// TestRunJSON: a run goes on the wire with its ID as users write it
// ("r-2"), no raw numeric ID, a nested cascade cause, and it decodes into
// api.Run and encodes back to the same bytes (what `refit runs -o json`
// prints is what the server sent).
func TestRunJSON(t *testing.T) {
	r := store.Run{ID: 2, Task: "api", Spec: task.Spec{Name: "api", Source: task.Source{Dir: "/src"}}.Defaults(),
		State: store.StateSucceeded, Attempts: 1, CreatedAt: time.Date(2026, 5, 3, 10, 0, 0, 0, time.UTC),
		Commit: "abc", Tags: []string{"latest"}, BlockedBy: []int64{1}, Timings: map[string]string{"total": "1s"},
		Bases: []store.UsedBase{{Ref: "docker.io/library/alpine:3", Name: "alpine:3", Stage: "0", Role: "runtime", Digest: "sha256:aa"}},
		Cause: store.Cause{Kind: "cascade", UpstreamRun: 1, Upstream: &store.Cause{Kind: "base", Base: "alpine"}}}
	b, err := json.Marshal(apiRun(r))
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	if fields["id"] != "r-2" {
		t.Errorf("JSON id = %v, want \"r-2\" (in %s)", fields["id"], b)
	}
	if _, ok := fields["ID"]; ok {
		t.Errorf("JSON has a raw ID field: %s", b)
	}
	for _, absent := range []string{"startedAt", "finishedAt", "step", "error"} {
		if _, ok := fields[absent]; ok {
			t.Errorf("JSON has %s although it is unset: %s", absent, b)
		}
	}
	want := `{"id":"r-2","task":"api",`
	if !bytes.HasPrefix(b, []byte(want)) {
		t.Errorf("JSON starts %.40s, want %s", b, want)
	}
	var back api.Run
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	again, _ := json.Marshal(back)
	if !bytes.Equal(b, again) {
		t.Errorf("api.Run round trip changed the JSON:\n%s\n%s", b, again)
	}
	if got := back.Cause.String(); got != "cascade of r-1 ← base: alpine  → " {
		t.Errorf("cause = %q", got)
	}
}

// TestWireMirrorsRows: where an api type mirrors a row or a spec field for
// field, both have the same JSON fields (names and options), so a field
// added to one and not the other fails here, not on a client. task.Spec
// and api.TaskSpec must agree exactly: the server decodes the wire spec
// with task's strict decoder, and `refit apply` converts through JSON.
func TestWireMirrorsRows(t *testing.T) {
	for _, p := range []struct{ row, wire any }{
		{task.Spec{}, api.TaskSpec{}},
		{task.Source{}, api.TaskSource{}},
		{task.Triggers{}, api.Triggers{}},
		{task.BaseTag{}, api.BaseTag{}},
		{store.Watch{}, api.Watch{}},
		{store.GitDelivery{}, api.GitDelivery{}},
		{task.Test{}, api.TaskTest{}},
		{task.Promote{}, api.Promote{}},
		{task.Approvers{}, api.Approvers{}},
		{store.Promotion{}, api.Promotion{}},
		{task.Schedule{}, api.Schedule{}},
		{task.BaseChange{}, api.BaseChange{}},
		{task.Urgent{}, api.Urgent{}},
		{task.CommitTrigger{}, api.CommitTrigger{}},
		{dockerfile.Base{}, api.Base{}},
		{store.Task{}, api.Task{}},
		{store.Cause{}, api.Cause{}},
		{store.UsedBase{}, api.UsedBase{}},
		{store.LogChunk{}, api.LogChunk{}},
		{store.PlatformDigest{}, api.PlatformDigest{}},
		{store.Observation{}, api.Observation{}},
		{store.Event{}, api.Event{}},
		{store.Subscription{}, api.Subscription{}},
		{store.Delivery{}, api.Delivery{}},
		{store.RegistryCredential{}, api.RegistryCredential{}},
		{plan.BaseStatus{}, api.BaseStatus{}},
		{attest.Predicate{}, api.RunAttestation{}},
		{attest.RunInfo{}, api.AttestedRun{}},
		{attest.ServerInfo{}, api.AttestedServer{}},
		{attest.SourceInfo{}, api.AttestedSource{}},
		{attest.CauseLink{}, api.CauseLink{}},
		{attest.Base{}, api.AttestedBase{}},
		{attest.Image{}, api.AttestedImage{}},
		{attest.Platform{}, api.PlatformDigest{}},
		{attest.TestResult{}, api.TestResult{}},
		{attest.Approval{}, api.Approval{}},
		{store.Token{}, api.Token{}},
		{audit.Entry{}, api.AuditEntry{}},
		{catalog.Catalog{}, api.ImageCatalog{}},
		{catalog.OS{}, api.OSRelease{}},
		{catalog.Package{}, api.Package{}},
		{catalog.ImageConfig{}, api.ImageConfig{}},
		{catalog.Stats{}, api.ReadStats{}},
		{catalog.Diff{}, api.ImageDiff{}},
		{catalog.OSChange{}, api.OSChange{}},
		{catalog.PackageChange{}, api.PackageChange{}},
		{catalog.ConfigChange{}, api.ConfigChange{}},
		{catalog.LayerChange{}, api.LayerChange{}},
		{catalog.VulnChanges{}, api.VulnChanges{}},
		{catalog.Vuln{}, api.Vuln{}},
	} {
		row, wire := jsonTags(reflect.TypeOf(p.row)), jsonTags(reflect.TypeOf(p.wire))
		if !slices.Equal(row, wire) {
			t.Errorf("%T has JSON fields %q, %T has %q", p.row, row, p.wire, wire)
		}
	}
}

// jsonTags lists the json tags of a struct's serialized fields, sorted.
func jsonTags(t reflect.Type) []string {
	var tags []string
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	return tags
}

package serve_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/client"
)

// TestAuditRecordsARealRun: a run built with the real BuildKit and
// registry is in the audit log from its queueing (by the user who
// queued it, with its cause) to its end (by system, with the digest
// pushed and the base digest pinned), and the chain verifies.
func TestAuditRecordsARealRun(t *testing.T) {
	r := startRefit(t, t.TempDir())
	ctx := context.Background()
	baseRef := r.RegistryAddr + "/base/busybox:1"
	_, baseDigest := pushBase(t, baseRef, "")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": appDockerfile, "app.txt": "hello\n"})
	if _, err := r.c.CreateTask(ctx, api.TaskSpec{Name: "app", Source: api.TaskSource{Dir: dir}, BuildArgs: map[string]string{"BASE": baseRef}}); err != nil {
		t.Fatal(err)
	}
	queued, err := r.c.Run(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	run := waitRun(t, r.c, queued.ID)
	if run.State != api.StateSucceeded {
		t.Fatalf("run %s: %s at %s: %s", run.ID, run.State, run.Step, run.Error)
	}
	es, err := r.c.ListAudit(ctx, client.AuditFilter{Subject: "app"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action+" by "+e.Actor)
	}
	if strings.Join(actions, ", ") != "task.create by admin, run.queue by admin, run.finish by system" {
		t.Fatalf("audit of app: %s", strings.Join(actions, ", "))
	}
	var fin struct {
		Run, State, Digest string
		Bases              []struct{ Ref, Digest string }
	}
	if err := json.Unmarshal(es[2].Details, &fin); err != nil || fin.Run != run.ID || fin.State != "succeeded" || fin.Digest != run.Digest ||
		!strings.Contains(string(es[2].Details), baseDigest) {
		t.Errorf("run.finish details = %s, want %s succeeded with digest %s on base %s", es[2].Details, run.ID, run.Digest, baseDigest)
	}
	if v, err := r.c.VerifyAudit(ctx); err != nil || !v.OK {
		t.Errorf("verify = %+v, %v", v, err)
	}
}

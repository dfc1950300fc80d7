package lifecycle_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// promoteRig is a real store, a real registry on loopback and the
// registry client refit uses, for promotion tests; runs "build" by
// pushing a random image to the registry.
type promoteRig struct {
	st   *store.Store
	repo string
	tags *regclient.Client
	exec *fakeExecutor
}

func newPromoteRig(t *testing.T) *promoteRig {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	p := &promoteRig{st: openStore(t), repo: strings.TrimPrefix(srv.URL, "http://") + "/app",
		tags: regclient.New(regclient.Config{Keychain: authn.NewMultiKeychain()})}
	p.exec = &fakeExecutor{byTask: map[string]func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error){
		"app": func(ctx context.Context, run store.Run, logs lifecycle.Logs) (lifecycle.Outcome, error) {
			d := p.push(t, "")
			return lifecycle.Outcome{Digest: d, Image: p.repo + "@" + d}, nil
		},
	}}
	return p
}

// push pushes a new random image (by digest, or to tag) and returns its
// digest.
func (p *promoteRig) push(t *testing.T, tag string) string {
	img, err := random.Image(128, 1)
	if err != nil {
		t.Error(err)
		return ""
	}
	dg, _ := img.Digest()
	ref := p.repo + "@" + dg.String()
	if tag != "" {
		ref = p.repo + ":" + tag
	}
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Error(err)
	}
	return dg.String()
}

func (p *promoteRig) addTask(t *testing.T, count int) {
	t.Helper()
	spec := task.Spec{Name: "app", Image: p.repo, Source: task.Source{Dir: "/src"},
		Test:    &task.Test{Command: []string{"/app/selftest"}},
		Promote: &task.Promote{Tags: []string{"stable"}, Policy: "approval", Approvers: &task.Approvers{Count: count}}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.st.CreateTask(context.Background(), store.Task{Spec: spec.Defaults()}); err != nil {
		t.Fatal(err)
	}
}

// life returns a lifecycle on the rig's store with tagger (the rig's
// client when nil), started when start is set.
func (p *promoteRig) life(t *testing.T, tagger lifecycle.Tagger, start bool) *lifecycle.Runs {
	t.Helper()
	if tagger == nil {
		tagger = p.tags
	}
	l, err := lifecycle.New(t.Context(), lifecycle.Config{Store: p.st, Executor: p.exec, Registry: reg, Debounce: -1,
		Tagger: tagger, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if start {
		if err := l.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Stop(context.Background()) })
	}
	return l
}

func (p *promoteRig) waitState(t *testing.T, id int64, want store.State) store.Run {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := p.st.GetRun(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == want {
			return r
		}
		if (r.State.Done() && !want.Done()) || time.Now().After(deadline) {
			t.Fatalf("run %s is %s (%s), waited for %s", store.FormatRunID(id), r.State, r.Error, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *promoteRig) stable(t *testing.T) string {
	t.Helper()
	d, err := p.tags.TagDigest(context.Background(), p.repo, "stable")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (p *promoteRig) events(t *testing.T, typ string) []store.Event {
	t.Helper()
	evs, err := p.st.ListEvents(context.Background(), store.EventFilter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestApprovalRules: the user who caused a run cannot approve it; a
// count of 2 needs two distinct approvers; a newer run supersedes one
// still awaiting approval, which then cannot be approved; a rejected run
// is never promoted; approval moves the tag to the run's digest.
func TestApprovalRules(t *testing.T) {
	p := newPromoteRig(t)
	p.addTask(t, 2)
	l := p.life(t, nil, true)
	ctx := context.Background()
	before := p.push(t, "stable")

	r1, err := l.Queue(ctx, "app", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitState(t, r1.ID, store.StateAwaitingApproval)
	if _, err := l.Approve(ctx, lifecycle.Decision{RunID: r1.ID, User: "alice"}); !errors.Is(err, lifecycle.ErrSelfApproval) ||
		!strings.Contains(err.Error(), "alice caused run "+store.FormatRunID(r1.ID)) {
		t.Errorf("alice approving her own run: %v, want ErrSelfApproval naming her", err)
	}

	r2, err := l.Queue(ctx, "app", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	built := p.waitState(t, r2.ID, store.StateAwaitingApproval)
	old := p.waitState(t, r1.ID, store.StateSuperseded)
	if !strings.Contains(old.Error, "superseded by "+store.FormatRunID(r2.ID)) {
		t.Errorf("superseded run's error = %q", old.Error)
	}
	if _, err := l.Approve(ctx, lifecycle.Decision{RunID: r1.ID, User: "bob"}); !errors.Is(err, lifecycle.ErrNotAwaiting) ||
		!strings.Contains(err.Error(), "superseded by "+store.FormatRunID(r2.ID)) {
		t.Errorf("approving a superseded run: %v, want ErrNotAwaiting naming the newer run", err)
	}

	got, err := l.Approve(ctx, lifecycle.Decision{RunID: r2.ID, User: "bob", Comment: "CVE-2026-1234"})
	if err != nil || got.State != store.StateAwaitingApproval {
		t.Fatalf("first of two approvals: %s, %v; want still awaiting", got.State, err)
	}
	if _, err := l.Approve(ctx, lifecycle.Decision{RunID: r2.ID, User: "bob"}); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("bob approving twice: %v, want ErrDuplicate", err)
	}
	if d := p.stable(t); d != before {
		t.Errorf("stable moved to %s before enough approvals", d)
	}
	if _, err := l.Approve(ctx, lifecycle.Decision{RunID: r2.ID, User: "carol"}); err != nil {
		t.Fatal(err)
	}
	p.waitState(t, r2.ID, store.StateSucceeded)
	if d := p.stable(t); d != built.Digest {
		t.Errorf("stable = %s after approval, want the run's digest %s", d, built.Digest)
	}
	if n := len(p.events(t, "run.approved")); n != 2 {
		t.Errorf("%d run.approved events, want 2", n)
	}

	r3, err := l.Queue(ctx, "app", store.Cause{Kind: "base", Base: "debian:12"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitState(t, r3.ID, store.StateAwaitingApproval)
	rej, err := l.Reject(ctx, lifecycle.Decision{RunID: r3.ID, User: "alice", Comment: "breaks login"})
	if err != nil || rej.State != store.StateRejected || !strings.Contains(rej.Error, "breaks login") {
		t.Fatalf("reject: %+v, %v", rej, err)
	}
	if d := p.stable(t); d != built.Digest {
		t.Errorf("stable = %s after a rejection, want it unchanged at %s", d, built.Digest)
	}
	if evs := p.events(t, "run.rejected"); len(evs) != 1 || evs[0].Subject != "app" {
		t.Errorf("run.rejected events = %+v, want one", evs)
	}
	if n := len(p.events(t, "run.awaiting_approval")); n != 3 {
		t.Errorf("%d run.awaiting_approval events, want 3", n)
	}
}

// flakyTagger writes the first tag and then fails, once: a crash after
// the registry write and before the promotion is recorded.
type flakyTagger struct {
	lifecycle.Tagger
	mu     sync.Mutex
	failed bool
	puts   int
}

func (f *flakyTagger) PutTag(ctx context.Context, repo, digest, tag string) error {
	err := f.Tagger.PutTag(ctx, repo, digest, tag)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	if err == nil && !f.failed {
		f.failed = true
		return errors.New("injected failure after the tag write")
	}
	return err
}

// TestPromotionCompletesOnceAfterCrash: an approval commits, and the
// process stops before the promotion job runs; a new process completes
// it, even though its first attempt fails after moving the tag: stable
// ends at the new digest, the promotion is recorded once with the digest
// stable had before, and image.promoted is emitted once.
func TestPromotionCompletesOnceAfterCrash(t *testing.T) {
	p := newPromoteRig(t)
	p.addTask(t, 1)
	ctx := context.Background()
	before := p.push(t, "stable")

	first := p.life(t, nil, true)
	r, err := first.Queue(ctx, "app", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	built := p.waitState(t, r.ID, store.StateAwaitingApproval)
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// The approval commits with its job; no process works it yet.
	idle := p.life(t, nil, false)
	got, err := idle.Approve(ctx, lifecycle.Decision{RunID: r.ID, User: "bob"})
	if err != nil || got.State != store.StatePromoting {
		t.Fatalf("approve: %s, %v", got.State, err)
	}
	if d := p.stable(t); d != before {
		t.Fatalf("stable moved before any process worked the promotion")
	}

	flaky := &flakyTagger{Tagger: p.tags}
	p.life(t, flaky, true)
	done := p.waitState(t, r.ID, store.StateSucceeded)
	if d := p.stable(t); d != built.Digest {
		t.Errorf("stable = %s, want %s", d, built.Digest)
	}
	flaky.mu.Lock()
	if flaky.puts < 2 {
		t.Errorf("%d tag writes, want the failed attempt retried", flaky.puts)
	}
	flaky.mu.Unlock()
	ps, err := p.st.Promotions(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].OldDigest != before || ps[0].NewDigest != built.Digest || ps[0].DoneAt.IsZero() || ps[0].By != "bob" {
		t.Errorf("promotions = %+v, want one, done, by bob, from %s to %s", ps, before, built.Digest)
	}
	evs := p.events(t, "image.promoted")
	if len(evs) != 1 || !strings.Contains(string(evs[0].Data), before) {
		t.Errorf("image.promoted events = %d, want one carrying the old digest %s", len(evs), before)
	}
	if n := len(p.events(t, "run.succeeded")); n != 1 || done.FinishedAt.IsZero() {
		t.Errorf("%d run.succeeded events, want 1", n)
	}
	// The auditor sees bob's approval and one promotion by bob with the
	// tag's old and new digest, though the tag write was retried.
	for action, actor := range map[string]string{"run.approve": "bob", "image.promote": "bob"} {
		es, err := p.st.AuditEntries(ctx, store.AuditFilter{Action: action})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 1 || es[0].Actor != actor {
			t.Errorf("%s audit entries = %+v, want one by %s", action, es, actor)
		} else if action == "image.promote" && (!strings.Contains(string(es[0].Details), before) || !strings.Contains(string(es[0].Details), built.Digest)) {
			t.Errorf("image.promote details %s, want the old digest %s and the new %s", es[0].Details, before, built.Digest)
		}
	}

	// Rollback: to the digest promoted before, not to one never promoted.
	l := p.life(t, nil, true)
	if _, err := l.Rollback(ctx, "app", before, "carol"); !errors.Is(err, lifecycle.ErrNotPromoted) {
		t.Errorf("rollback to a digest the task never promoted: %v, want ErrNotPromoted", err)
	}
	r2, err := l.Queue(ctx, "app", store.Cause{Kind: "schedule"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitState(t, r2.ID, store.StateAwaitingApproval)
	if _, err := l.Approve(ctx, lifecycle.Decision{RunID: r2.ID, User: "bob"}); err != nil {
		t.Fatal(err)
	}
	newer := p.waitState(t, r2.ID, store.StateSucceeded)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rolled, err := l.Rollback(rctx, "app", built.Digest, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if len(rolled) != 1 || rolled[0].OldDigest != newer.Digest || rolled[0].NewDigest != built.Digest {
		t.Errorf("rollback = %+v, want stable from %s back to %s", rolled, newer.Digest, built.Digest)
	}
	if d := p.stable(t); d != built.Digest {
		t.Errorf("stable = %s after rollback, want %s", d, built.Digest)
	}
}

// TestCascadeWaitsForPromotion: a task built FROM a gated task's promote
// tag gets no run while its upstream awaits approval, and a cascade run
// once the upstream is promoted.
func TestCascadeWaitsForPromotion(t *testing.T) {
	p := newPromoteRig(t)
	p.addTask(t, 1)
	f := &fixture{st: p.st}
	f.addTask(t, task.Spec{Name: "web"}, "FROM "+p.repo+":stable\n")
	l := p.life(t, nil, true)
	ctx := context.Background()

	up, err := l.Queue(ctx, "app", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitState(t, up.ID, store.StateAwaitingApproval)
	time.Sleep(200 * time.Millisecond) // a cascade, if wrongly made, would exist by now
	if rs, _ := p.st.ListRuns(ctx, store.RunFilter{Task: "web"}); len(rs) != 0 {
		t.Fatalf("web has runs %+v while its upstream awaits approval", rs)
	}
	if _, err := l.Approve(ctx, lifecycle.Decision{RunID: up.ID, User: "bob"}); err != nil {
		t.Fatal(err)
	}
	p.waitState(t, up.ID, store.StateSucceeded)
	f.l = l
	down := f.runOf(t, "web")
	if down.Cause.Kind != "cascade" || down.Cause.UpstreamRun != up.ID {
		t.Errorf("web's run cause = %+v, want a cascade of %s", down.Cause, store.FormatRunID(up.ID))
	}
	if r := f.waitEnded(t, down.ID); r.State != store.StateSucceeded {
		t.Errorf("web's run %s: %s", r.State, r.Error)
	}
}

// TestApprovalByCauseKind: with requireApprovalFor [base], a manual run
// is promoted as soon as it built and a base update's run waits.
func TestApprovalByCauseKind(t *testing.T) {
	p := newPromoteRig(t)
	spec := task.Spec{Name: "app", Image: p.repo, Source: task.Source{Dir: "/src"},
		Test:    &task.Test{Target: "test"},
		Promote: &task.Promote{Tags: []string{"stable", "prod"}, Policy: "approval", RequireApprovalFor: []string{"base"}}}
	if _, err := p.st.CreateTask(context.Background(), store.Task{Spec: spec.Defaults()}); err != nil {
		t.Fatal(err)
	}
	l := p.life(t, nil, true)
	ctx := context.Background()
	manual, err := l.Queue(ctx, "app", store.Cause{Kind: "manual", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	done := p.waitState(t, manual.ID, store.StateSucceeded)
	for _, tag := range []string{"stable", "prod"} {
		if d, err := p.tags.TagDigest(ctx, p.repo, tag); err != nil || d != done.Digest {
			t.Errorf("%s = %s (%v), want the manual run's %s", tag, d, err, done.Digest)
		}
	}
	evs := p.events(t, "image.promoted")
	if len(evs) != 1 || !strings.Contains(string(evs[0].Data), `"by":"system"`) && !strings.Contains(string(evs[0].Data), `"by": "system"`) {
		t.Errorf("image.promoted = %d events (%+v), want one by system", len(evs), evs)
	}
	base, err := l.Queue(ctx, "app", store.Cause{Kind: "base", Base: "debian:12"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitState(t, base.ID, store.StateAwaitingApproval)
}

// TestReapproveOnChange: with reapproveOnChange false, a rebuild whose
// platform images equal the promoted run's is promoted without a new
// approval; one whose images differ waits.
func TestReapproveOnChange(t *testing.T) {
	p := newPromoteRig(t)
	no := false
	spec := task.Spec{Name: "app", Image: p.repo, Source: task.Source{Dir: "/src"}, Test: &task.Test{Target: "test"},
		Promote: &task.Promote{Tags: []string{"stable"}, Policy: "approval", ReapproveOnChange: &no}}
	if _, err := p.st.CreateTask(context.Background(), store.Task{Spec: spec.Defaults()}); err != nil {
		t.Fatal(err)
	}
	var platform atomic.Value
	platform.Store("sha256:" + strings.Repeat("a", 64))
	p.exec.byTask["app"] = func(ctx context.Context, run store.Run, logs lifecycle.Logs) (lifecycle.Outcome, error) {
		d := p.push(t, "") // a new index digest every time
		return lifecycle.Outcome{Digest: d, Image: p.repo + "@" + d,
			Platforms: []store.PlatformDigest{{Platform: "linux/amd64", Digest: platform.Load().(string)}}}, nil
	}
	l := p.life(t, nil, true)
	ctx := context.Background()
	r1, _ := l.Queue(ctx, "app", store.Cause{Kind: "base"})
	p.waitState(t, r1.ID, store.StateAwaitingApproval)
	if _, err := l.Approve(ctx, lifecycle.Decision{RunID: r1.ID, User: "bob"}); err != nil {
		t.Fatal(err)
	}
	p.waitState(t, r1.ID, store.StateSucceeded)
	r2, _ := l.Queue(ctx, "app", store.Cause{Kind: "base"})
	same := p.waitState(t, r2.ID, store.StateSucceeded)
	if d := p.stable(t); d != same.Digest {
		t.Errorf("stable = %s, want the unchanged rebuild's %s", d, same.Digest)
	}
	platform.Store("sha256:" + strings.Repeat("b", 64))
	r3, _ := l.Queue(ctx, "app", store.Cause{Kind: "base"})
	p.waitState(t, r3.ID, store.StateAwaitingApproval)
}

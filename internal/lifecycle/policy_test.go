package lifecycle_test

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/catalog"
	ct "github.com/refit-dev/refit/internal/catalog/catalogtest"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// osv is a small vulnerability database for tests: package name →
// version that fixes → vulnerability.
type osv map[string]map[string]catalog.Vuln

func (o osv) Changes(ctx context.Context, ecosystem, name, oldVersion, newVersion string) (fixes, introduces []catalog.Vuln, err error) {
	if v, ok := o[name][newVersion]; ok && oldVersion != "" {
		fixes = append(fixes, v)
	}
	return fixes, nil, nil
}

func ecosystem(id, version string) (string, bool) {
	if id == "debian" {
		return "Debian:" + version, true
	}
	return "", false
}

func TestDecide(t *testing.T) {
	ctx := context.Background()
	db := osv{
		"openssl": {"3.0.13-1": {ID: "CVE-2026-1234", Severity: "high", Package: "openssl"}},
		"zlib":    {"1.3-1": {ID: "CVE-2026-9", Severity: "medium", Package: "zlib"}},
		"glibc":   {"2.36-10": {ID: "CVE-2026-7", Severity: "critical", Package: "glibc"}},
	}
	cat := func(pkgs ...catalog.Package) catalog.Catalog {
		return catalog.Catalog{OS: catalog.OS{ID: "debian", VersionID: "12"}, Packages: pkgs}
	}
	pkg := func(n, v string) catalog.Package {
		return catalog.Package{Name: n, Version: v, Arch: "amd64", Type: "deb"}
	}
	base := cat(pkg("openssl", "3.0.11-1"), pkg("zlib", "1.2-1"), pkg("glibc", "2.36-9"))
	diff := func(to catalog.Catalog, vulns bool) catalog.Diff {
		d := catalog.Compare(base, to)
		if vulns {
			if err := catalog.AddVulns(ctx, &d, base.OS, to.OS, db, ecosystem); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	same := diff(base, true)
	highFix := diff(cat(pkg("openssl", "3.0.13-1"), pkg("zlib", "1.2-1"), pkg("glibc", "2.36-9")), true)
	mediumFix := diff(cat(pkg("openssl", "3.0.11-1"), pkg("zlib", "1.3-1"), pkg("glibc", "2.36-9")), true)
	criticalFix := diff(cat(pkg("openssl", "3.0.11-1"), pkg("zlib", "1.2-1"), pkg("glibc", "2.36-10")), true)
	noDB := diff(cat(pkg("openssl", "3.0.13-1"), pkg("zlib", "1.2-1"), pkg("glibc", "2.36-9")), false)

	packages := &task.BaseChange{RebuildWhen: "packages"}
	fixesHigh := &task.BaseChange{RebuildWhen: "fixes", MinSeverity: "high"}
	for _, tt := range []struct {
		name    string
		policy  *task.BaseChange
		diff    catalog.Diff
		rebuild bool
		reason  string
	}{
		{"no policy", nil, same, true, ""},
		{"any", &task.BaseChange{RebuildWhen: "any"}, same, true, ""},
		{"packages, none changed", packages, same, false, "base moved, not rebuilt: no package changed"},
		{"packages, one changed", packages, highFix, true, "rebuilt: packages 1 changed"},
		{"fixes high, a high fix", fixesHigh, highFix, true, "rebuilt: fixes CVE-2026-1234 (high) in openssl"},
		{"fixes high, a medium fix", fixesHigh, mediumFix, false, "base moved, not rebuilt: fixes no vulnerability at or above high"},
		{"fixes (default high), a critical fix", &task.BaseChange{RebuildWhen: "fixes"}, criticalFix, true, "rebuilt: fixes CVE-2026-7 (critical) in glibc"},
		{"fixes medium, a medium fix", &task.BaseChange{RebuildWhen: "fixes", MinSeverity: "medium"}, mediumFix, true, "rebuilt: fixes CVE-2026-9 (medium) in zlib"},
		{"fixes without a database", fixesHigh, noDB, true, "rebuilt: no vulnerability database to tell what the update fixes (fallback)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := lifecycle.Decide(tt.policy, tt.diff)
			if got.Rebuild != tt.rebuild || got.Reason != tt.reason {
				t.Errorf("Decide = %+v, want rebuild %v, %q", got, tt.rebuild, tt.reason)
			}
		})
	}
	urgent := &task.BaseChange{RebuildWhen: "fixes", Urgent: &task.Urgent{Severity: "critical", Debounce: "0s"}}
	if _, ok := lifecycle.Urgent(urgent, highFix); ok {
		t.Error("a high fix counted as urgent for urgent.severity critical")
	}
	if d, ok := lifecycle.Urgent(urgent, criticalFix); !ok || d != 0 {
		t.Errorf("critical fix: Urgent = %v, %v; want 0s, true", d, ok)
	}
}

// policyLife is a started lifecycle with a real catalog (a loopback
// registry, the registry client, the store) as its Differ.
type policyLife struct {
	*life
	host string
}

func startPolicyLife(t *testing.T, debounce time.Duration, vulns catalog.Vulns) *policyLife {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	st := openStore(t)
	cfg := catalog.Config{Images: regclient.New(regclient.Config{}), Store: st}
	if vulns != nil {
		cfg.Vulns, cfg.Ecosystem = vulns, ecosystem
	}
	cats, err := catalog.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &fakeExecutor{byTask: map[string]func(context.Context, store.Run, lifecycle.Logs) (lifecycle.Outcome, error){}}
	l, err := lifecycle.New(t.Context(), lifecycle.Config{Store: st, Executor: e, Registry: reg, Debounce: debounce,
		Differ: cats, Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	return &policyLife{life: &life{fixture: fixture{st: st, l: l}, exec: e}, host: strings.TrimPrefix(srv.URL, "http://")}
}

// push pushes img as debian:12 and observes the tag moving to it.
func (p *policyLife) push(t *testing.T, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(p.host+"/debian:12", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	p.observe(t, p.host+"/debian:12", d.String(), "linux/amd64", d.String())
	return d.String()
}

func (p *policyLife) events(t *testing.T, typ string) []store.Event {
	t.Helper()
	evs, err := p.st.ListEvents(context.Background(), store.EventFilter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

var (
	openssl11 = ct.P("openssl", "3.0.11-1~deb12u2", "amd64")
	openssl13 = ct.P("openssl", "3.0.13-1~deb12u1", "amd64")
	bash      = ct.P("bash", "5.2.15-2+b2", "amd64")
)

// A base move that changed no package does not rebuild a task with
// rebuildWhen: packages — the run ends skipped, saying so, and run.skipped
// is emitted; one that changed a package rebuilds it.
func TestRebuildWhenPackages(t *testing.T) {
	p := startPolicyLife(t, -1, nil)
	p.addTask(t, task.Spec{Name: "app", Triggers: &task.Triggers{Base: true, BaseChange: &task.BaseChange{RebuildWhen: "packages"}}},
		"FROM "+p.host+"/debian:12\n")
	p.addTask(t, task.Spec{Name: "always"}, "FROM "+p.host+"/debian:12\n")
	p.push(t, ct.Debian("12", []ct.Pkg{openssl11, bash}))
	// Only a file outside the package database changes.
	p.push(t, ct.Debian("12", []ct.Pkg{openssl11, bash}, ct.Layer(map[string]string{"etc/motd": "hello"})))
	skipped := p.waitEnded(t, p.runOf(t, "app").ID)
	if skipped.State != store.StateSkipped || skipped.Error != "base moved, not rebuilt: no package changed" ||
		skipped.Cause.Decision != skipped.Error {
		t.Errorf("app's run = %s %q (decision %q), want skipped: no package changed", skipped.State, skipped.Error, skipped.Cause.Decision)
	}
	if always := p.waitEnded(t, p.runOf(t, "always").ID); always.State != store.StateSucceeded || always.Cause.Decision != "" {
		t.Errorf("the task without a policy: %s %q, want succeeded with no decision", always.State, always.Cause.Decision)
	}
	evs := p.events(t, store.EventRunSkipped)
	if len(evs) != 1 || evs[0].Subject != "app" {
		t.Fatalf("run.skipped events = %+v, want one for app", evs)
	}
	var diffs []lifecycle.BaseDiff
	for _, e := range p.events(t, store.EventBaseDiff) {
		var d lifecycle.BaseDiff
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		diffs = append(diffs, d)
	}
	if len(diffs) != 1 || diffs[0].Diff.PackagesChanged() || diffs[0].Diff.Layers.NewCount != 2 {
		t.Fatalf("base.diff events = %+v, want one, with no package change and 2 layers", diffs)
	}
	for _, ran := range p.exec.executed() {
		if ran == "app" {
			t.Error("the skipped task was executed")
		}
	}

	// Now openssl moves: app rebuilds, and its cause says why.
	p.push(t, ct.Debian("12", []ct.Pkg{openssl13, bash}, ct.Layer(map[string]string{"etc/motd": "hello"})))
	var rebuilt store.Run
	deadline := time.Now().Add(30 * time.Second)
	for {
		rs, err := p.st.ListRuns(context.Background(), store.RunFilter{Task: "app", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 2 && rs[0].State.Done() {
			rebuilt = rs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("app's second run did not end: %+v", rs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rebuilt.State != store.StateSucceeded || rebuilt.Cause.Decision != "rebuilt: packages 1 changed" {
		t.Errorf("app's second run = %s, decision %q; want succeeded, packages 1 changed", rebuilt.State, rebuilt.Cause.Decision)
	}
}

// urgent: a critical fix starts the run without the (long) debounce.
func TestUrgentSkipsDebounce(t *testing.T) {
	db := osv{"openssl": {"3.0.13-1~deb12u1": {ID: "CVE-2026-1234", Severity: "critical", Package: "openssl"}}}
	p := startPolicyLife(t, time.Hour, db)
	p.addTask(t, task.Spec{Name: "app", Triggers: &task.Triggers{Base: true, BaseChange: &task.BaseChange{
		RebuildWhen: "fixes", Urgent: &task.Urgent{Severity: "critical", Debounce: "0s"}}}}, "FROM "+p.host+"/debian:12\n")
	p.addTask(t, task.Spec{Name: "calm"}, "FROM "+p.host+"/debian:12\n")
	p.push(t, ct.Debian("12", []ct.Pkg{openssl11, bash}))
	p.push(t, ct.Debian("12", []ct.Pkg{openssl13, bash}))
	r := p.waitEnded(t, p.runOf(t, "app").ID)
	if r.State != store.StateSucceeded || r.Cause.Decision != "rebuilt: fixes CVE-2026-1234 (critical) in openssl" {
		t.Errorf("app's run = %s, decision %q", r.State, r.Cause.Decision)
	}
	calm, _ := p.st.GetRun(context.Background(), p.runOf(t, "calm").ID)
	if calm.State != store.StateQueued {
		t.Errorf("the task without urgent: %s, want still queued (an hour's debounce)", calm.State)
	}
	// The waiting run's cause carries the diff's summary.
	if want := "openssl 3.0.11-1~deb12u2 → 3.0.13-1~deb12u1"; calm.Cause.Changes != want {
		t.Errorf("the waiting run's cause says %q, want %q", calm.Cause.Changes, want)
	}
}

// A diff that cannot be made (the old image is gone) does not hold the
// run for ever: after the policy's wait it builds, and says so.
func TestDiffTimeoutFallsBackToBuild(t *testing.T) {
	p := startPolicyLife(t, -1, nil)
	p.addTask(t, task.Spec{Name: "app", Triggers: &task.Triggers{Base: true, BaseChange: &task.BaseChange{RebuildWhen: "packages", Wait: "3s"}}},
		"FROM "+p.host+"/debian:12\n")
	p.observe(t, p.host+"/debian:12", "sha256:"+strings.Repeat("1", 64), "linux/amd64", "sha256:"+strings.Repeat("1", 64))
	p.push(t, ct.Debian("12", []ct.Pkg{openssl11, bash}))
	r := p.waitEnded(t, p.runOf(t, "app").ID)
	if r.State != store.StateSucceeded || r.Cause.Decision != "rebuilt: the base's diff was not ready within 3s (fallback)" {
		t.Errorf("app's run = %s, decision %q; want built after the wait", r.State, r.Cause.Decision)
	}
}

// A platform new to a reference (its index gained linux/arm64) gets a
// diff too: base.diff says the platform is new and lists its packages
// as added.
func TestDiffOfNewPlatform(t *testing.T) {
	p := startPolicyLife(t, -1, nil)
	p.addTask(t, task.Spec{Name: "app"}, "FROM "+p.host+"/debian:12\n") // tracks the reference
	amd := p.push(t, ct.Debian("12", []ct.Pkg{openssl11, bash}))
	arm := ct.Debian("12", []ct.Pkg{ct.P("openssl", "3.0.11-1~deb12u2", "arm64"), ct.P("bash", "5.2.15-2+b2", "arm64")})
	r, err := name.ParseReference(p.host+"/debian:arm64", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, arm); err != nil {
		t.Fatal(err)
	}
	armDigest, _ := arm.Digest()
	// The tag now names an index of both platforms; amd64 is unchanged.
	top := "sha256:" + strings.Repeat("ab", 32)
	res := p.observe(t, p.host+"/debian:12", top, "linux/amd64", amd, "linux/arm64", armDigest.String())
	if len(res.Changed) != 1 || res.Changed[0].OldDigest != "" {
		t.Fatalf("observation changed %+v, want linux/arm64 added", res.Changed)
	}
	var got lifecycle.BaseDiff
	deadline := time.Now().Add(30 * time.Second)
	for got.NewDigest == "" {
		for _, e := range p.events(t, store.EventBaseDiff) {
			if err := json.Unmarshal(e.Data, &got); err != nil {
				t.Fatal(err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no base.diff event for the new platform")
		}
		time.Sleep(20 * time.Millisecond)
	}
	d := got.Diff
	var added []string
	for _, a := range d.Added {
		added = append(added, a.Name+" "+a.Arch+" "+a.Version)
	}
	if got.Platform != "linux/arm64" || got.OldDigest != "" || got.NewDigest != armDigest.String() || !d.NewPlatform ||
		d.Old != "" || len(d.Changed)+len(d.Removed) != 0 || d.OS == nil || d.OS.New.VersionID != "12" {
		t.Errorf("base.diff = %+v, want linux/arm64 new, from nothing to %s", got, armDigest)
	}
	if diff := cmp.Diff([]string{"bash arm64 5.2.15-2+b2", "openssl arm64 3.0.11-1~deb12u2"}, added); diff != "" {
		t.Errorf("added (-want +got):\n%s", diff)
	}
	if s := d.Summary(); s != "new platform: debian 12, 2 packages" {
		t.Errorf("Summary = %q", s)
	}
}

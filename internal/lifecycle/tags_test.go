package lifecycle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/index"
	"github.com/refit-dev/refit/internal/lifecycle"
	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/registry"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// pushTag pushes a small random image to ref (on a plain-HTTP loopback
// registry) and returns its digest.
func pushTag(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// waitFor polls cond every 50 ms for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// events returns the outbox's events of type typ.
func eventsOf(t *testing.T, st *store.Store, typ string) []store.Event {
	t.Helper()
	evs, err := st.ListEvents(context.Background(), store.EventFilter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestBaseTagsRebuild runs the index watcher with the real registry
// client against refit's embedded registry (distribution) on loopback,
// and the lifecycle on a real store: a task following
// docker-style python tags under "~3.12" is rebuilt with PYTHON_TAG=3.12.9
// when 3.12.9 appears (recorded on the run, kept as the task's effective
// arg for a later manual run), a notify follower only hears base.tagged,
// 3.13.0 and 3.12.10-rc1 start nothing, and watches emit base.updated
// and base.tagged without any run.
func TestBaseTagsRebuild(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	regh, err := registry.New(ctx, registry.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(regh)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	python := host + "/library/python"
	pushTag(t, python+":3.12.7")
	pushTag(t, python+":3.12.8")
	pushTag(t, python+":latest")

	f := newFixture(t)
	follow := task.BaseTag{Ref: python, Arg: "PYTHON_TAG", Semver: "~3.12"}
	df := "ARG PYTHON_TAG=3.12.8\nFROM " + python + ":${PYTHON_TAG}\n"
	f.addTask(t, task.Spec{Name: "py", BuildArgs: map[string]string{"PYTHON_TAG": "3.12.8"},
		Triggers: &task.Triggers{Base: true, Manual: true, BaseTags: []task.BaseTag{follow}}}, df)
	notify := follow
	notify.Arg, notify.Action = "", "notify"
	f.addTask(t, task.Spec{Name: "watcher", Triggers: &task.Triggers{Manual: true, BaseTags: []task.BaseTag{notify}}}, df)

	rc := regclient.New(regclient.Config{Keychain: authn.NewMultiKeychain()})
	w, err := index.NewWatcher(index.WatcherConfig{Store: f.st, Checker: rc, Observer: f.l, Tags: rc, TagObserver: f.l,
		Interval: time.Second, Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	repo := func() store.TagRepo {
		rs, err := f.st.ListTagRepos(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Repository == python {
				return r
			}
		}
		return store.TagRepo{}
	}
	// listedAfter waits for a listing that starts after now.
	listedAfter := func(what string) {
		t.Helper()
		t0 := time.Now()
		waitFor(t, what, func() bool { return repo().ListedAt.After(t0) })
	}

	// First sight: the newest matching tag is recorded, nothing runs.
	waitFor(t, "the first listing", func() bool { return repo().Newest["~3.12"].Tag == "3.12.8" })
	if rs := f.runs(t); len(rs) != 0 {
		t.Fatalf("first sight queued runs: %+v", rs)
	}

	// 3.12.9 appears: one run of py, with the new tag as its build arg.
	d9 := pushTag(t, python+":3.12.9")
	waitFor(t, "a run for 3.12.9", func() bool { return len(f.runs(t)) > 0 })
	rs := f.runs(t)
	if len(rs) != 1 || rs[0].Task != "py" {
		t.Fatalf("runs = %+v, want one run of py", rs)
	}
	r := rs[0]
	if got := r.Spec.BuildArgs["PYTHON_TAG"]; got != "3.12.9" {
		t.Errorf("run's PYTHON_TAG = %q, want 3.12.9", got)
	}
	if c := r.Cause; c.Kind != "baseTag" || c.Base != python || c.OldTag != "3.12.8" || c.NewTag != "3.12.9" || c.NewDigest != d9 {
		t.Errorf("cause = %+v, want baseTag %s 3.12.8 → 3.12.9 at %s", c, python, d9)
	}
	if !slices.Contains(f.jobs(t), r.ID) {
		t.Errorf("run %d has no job", r.ID)
	}
	tk, err := f.st.GetTask(ctx, "py")
	if err != nil {
		t.Fatal(err)
	}
	if tk.TagArgs["PYTHON_TAG"] != "3.12.9" {
		t.Errorf("task's effective args = %v, want PYTHON_TAG=3.12.9", tk.TagArgs)
	}
	// The tag is in the index's history like any reference, at its
	// digest (its entry is retired again while no task builds on it).
	if obs, err := f.st.Observations(ctx, python+":3.12.9", 10); err != nil || len(obs) != 1 || obs[0].TopDigest != d9 || obs[0].Source != "tag" {
		t.Errorf("history of 3.12.9 = %+v, %v; want one sighting of %s from source tag", obs, err, d9)
	}
	tagged := eventsOf(t, f.st, store.EventBaseTagged)
	if len(tagged) != 1 {
		t.Fatalf("base.tagged events = %d, want 1", len(tagged))
	}
	var ev lifecycle.BaseTagged
	if err := json.Unmarshal(tagged[0].Data, &ev); err != nil {
		t.Fatal(err)
	}
	if tagged[0].Subject != python || ev.Tag != "3.12.9" || ev.OldTag != "3.12.8" || ev.Digest != d9 ||
		!slices.Equal(ev.Tasks, []string{"py"}) || !slices.Equal(ev.Notified, []string{"watcher"}) {
		t.Errorf("base.tagged = %s %+v", tagged[0].Subject, ev)
	}

	// Outside the range, and a pre-release: nothing.
	pushTag(t, python+":3.13.0")
	pushTag(t, python+":3.12.10-rc1")
	listedAfter("a listing after 3.13.0 and 3.12.10-rc1")
	listedAfter("another listing")
	if n := len(f.runs(t)); n != 1 {
		t.Errorf("3.13.0 and 3.12.10-rc1 queued runs: %d runs, want 1", n)
	}
	if n := len(eventsOf(t, f.st, store.EventBaseTagged)); n != 1 {
		t.Errorf("base.tagged events = %d after 3.13.0 and 3.12.10-rc1, want 1", n)
	}

	// A later manual run builds with the newest tag too.
	mr, err := f.l.Queue(ctx, "py", store.Cause{Kind: "manual", User: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if got := mr.Spec.BuildArgs["PYTHON_TAG"]; got != "3.12.9" {
		t.Errorf("manual run's PYTHON_TAG = %q, want the effective 3.12.9", got)
	}
	runsBefore := len(f.runs(t))

	// A watch: its tag moving emits base.updated and queues nothing; with
	// a range, a new tag of its repository emits base.tagged.
	debian := host + "/library/debian:12"
	pushTag(t, debian)
	if _, err := f.st.PutWatch(ctx, store.Watch{Ref: debian, Repository: host + "/library/debian", ByDigest: true}); err != nil {
		t.Fatal(err)
	}
	node := host + "/library/node"
	pushTag(t, node+":20.1.0")
	if _, err := f.st.PutWatch(ctx, store.Watch{Ref: node, Repository: node, Semver: "^20"}); err != nil {
		t.Fatal(err)
	}
	w.Wake()
	waitFor(t, "the watched reference's first check", func() bool {
		b, err := f.st.GetBaseRef(ctx, debian)
		return err == nil && b.Digest != ""
	})
	waitFor(t, "the watched repository's first listing", func() bool {
		rs, _ := f.st.ListTagRepos(ctx)
		for _, r := range rs {
			if r.Repository == node && r.Newest["^20"].Tag == "20.1.0" {
				return true
			}
		}
		return false
	})
	moved := pushTag(t, debian)
	pushTag(t, node+":20.2.0")
	waitFor(t, "base.updated of the watched reference", func() bool {
		for _, e := range eventsOf(t, f.st, store.EventBaseUpdated) {
			if e.Subject == debian && strings.Contains(string(e.Data), moved) {
				return true
			}
		}
		return false
	})
	waitFor(t, "base.tagged of the watched repository", func() bool {
		for _, e := range eventsOf(t, f.st, store.EventBaseTagged) {
			if e.Subject == node && strings.Contains(string(e.Data), `"tag":"20.2.0"`) {
				return true
			}
		}
		return false
	})
	if n := len(f.runs(t)); n != runsBefore {
		t.Errorf("watches queued runs: %d runs, want %d", n, runsBefore)
	}
}

// TestBaseTagsHint: with an interval of an hour, a push hint naming a
// new tag of a followed repository (as the embedded registry and
// registry webhooks give) lists it at once and rebuilds.
func TestBaseTagsHint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	regh, err := registry.New(ctx, registry.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(regh)
	defer srv.Close()
	python := strings.TrimPrefix(srv.URL, "http://") + "/library/python"
	pushTag(t, python+":3.12.8")
	f := newFixture(t)
	f.addTask(t, task.Spec{Name: "py", Triggers: &task.Triggers{Base: true, BaseTags: []task.BaseTag{
		{Ref: python, Arg: "PYTHON_TAG", Semver: "~3.12"}}}}, "ARG PYTHON_TAG=3.12.8\nFROM "+python+":${PYTHON_TAG}\n")
	rc := regclient.New(regclient.Config{Keychain: authn.NewMultiKeychain()})
	w, err := index.NewWatcher(index.WatcherConfig{Store: f.st, Checker: rc, Observer: f.l, Tags: rc, TagObserver: f.l,
		Interval: time.Hour, Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the first listing", func() bool {
		rs, _ := f.st.ListTagRepos(ctx)
		return len(rs) == 1 && rs[0].Newest["~3.12"].Tag == "3.12.8"
	})
	pushTag(t, python+":3.12.9")
	if err := w.Hint(ctx, []string{python + ":3.12.9"}, "push", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a run for 3.12.9 after the hint", func() bool { return len(f.runs(t)) == 1 })
	if got := f.runs(t)[0].Spec.BuildArgs["PYTHON_TAG"]; got != "3.12.9" {
		t.Errorf("PYTHON_TAG = %q, want 3.12.9", got)
	}
}

// TestBaseTagsNewestOf10k: the watcher finds the newest tag per
// constraint among 10,000 served in pages of 1,000, in one listing of
// 10 page requests, and resolves only those.
func TestBaseTagsNewestOf10k(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	regh, err := registry.New(ctx, registry.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for i := range 10_000 {
		tags = append(tags, fmt.Sprintf("1.%d.%d", i/100, i%100))
	}
	slices.Sort(tags)
	var pages atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/tags/list") {
			regh.ServeHTTP(w, r)
			return
		}
		pages.Add(1)
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		start := 0
		if last := r.URL.Query().Get("last"); last != "" {
			start, _ = slices.BinarySearch(tags, last)
			start++
		}
		end := min(start+n, len(tags))
		if end < len(tags) {
			w.Header().Set("Link", fmt.Sprintf(`<%s?n=%d&last=%s>; rel="next"`, r.URL.Path, n, tags[end-1]))
		}
		json.NewEncoder(w).Encode(map[string]any{"name": "lib/python", "tags": tags[start:end]})
	}))
	defer srv.Close()
	python := strings.TrimPrefix(srv.URL, "http://") + "/lib/python"
	d42 := pushTag(t, python+":1.42.99")
	d99 := pushTag(t, python+":1.99.99")

	f := newFixture(t)
	f.addTask(t, task.Spec{Name: "a", Triggers: &task.Triggers{BaseTags: []task.BaseTag{
		{Ref: python, Arg: "V", Semver: "~1.42"}, {Ref: python, Arg: "W", Semver: "^1"}}}}, "ARG V=1.42.0\nFROM "+python+":${V}\n")
	rc := regclient.New(regclient.Config{Keychain: authn.NewMultiKeychain()})
	w, err := index.NewWatcher(index.WatcherConfig{Store: f.st, Checker: rc, Observer: f.l, Tags: rc, TagObserver: f.l,
		Interval: time.Hour, Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var repo store.TagRepo
	waitFor(t, "the listing", func() bool {
		rs, _ := f.st.ListTagRepos(ctx)
		if len(rs) == 1 && !rs[0].ListedAt.IsZero() {
			repo = rs[0]
			return true
		}
		return false
	})
	if repo.TagCount != 10_000 || repo.LastError != "" {
		t.Fatalf("listing = %+v", repo)
	}
	if got := repo.Newest["~1.42"]; got.Tag != "1.42.99" || got.Digest != d42 {
		t.Errorf("newest ~1.42 = %+v, want 1.42.99 at %s", got, d42)
	}
	if got := repo.Newest["^1"]; got.Tag != "1.99.99" || got.Digest != d99 {
		t.Errorf("newest ^1 = %+v, want 1.99.99 at %s", got, d99)
	}
	if p := pages.Load(); p != 10 {
		t.Errorf("%d page requests, want 10", p)
	}
}

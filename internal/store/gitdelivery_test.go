package store_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/refit-dev/refit/internal/store"
)

// TestGitDeliveries: the last delivery is kept per repository and source,
// replaced by the next one, read back field for field, its message cut to
// 1 KiB on a rune boundary; another repository's rows are not shown.
func TestGitDeliveries(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	at := time.Date(2026, 11, 30, 2, 10, 11, 0, time.UTC)
	first := store.GitDelivery{RepoKey: "example.com/acme/api", Source: "github", At: at, Delivery: "git:github:d1",
		Ref: "refs/heads/main", SHA: strings.Repeat("a", 40), Status: 202, Message: "1 run(s) queued", Runs: []string{"r-7"}}
	for _, d := range []store.GitDelivery{first,
		{RepoKey: "example.com/acme/api", Source: "poll", At: at, Delivery: "git:poll:x", Ref: "refs/heads/main", SHA: strings.Repeat("b", 40),
			Message: "no task builds refs/heads/main: api: no changed file is under triggers.commit.paths [svc/**]"},
		{RepoKey: "example.com/acme/other", Source: "github", At: at, Message: "other"},
	} {
		if err := s.RecordGitDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GitDeliveries(ctx, "example.com/acme/api")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Source != "github" || got[1].Source != "poll" {
		t.Fatalf("deliveries = %+v, want github and poll", got)
	}
	if diff := cmpDiff(first, got[0]); diff != "" {
		t.Errorf("github delivery read back (-want +got):\n%s", diff)
	}

	// The next github delivery replaces the first; a long message is cut.
	long := strings.Repeat("é", 2000)
	if err := s.RecordGitDelivery(ctx, store.GitDelivery{RepoKey: "example.com/acme/api", Source: "github", At: at.Add(time.Minute),
		Ref: "refs/heads/main", Status: 401, Message: long}); err != nil {
		t.Fatal(err)
	}
	got, err = s.GitDeliveries(ctx, "example.com/acme/api")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d deliveries after a second github one, want 2 (one per source)", len(got))
	}
	g := got[0]
	if g.Status != 401 || !g.At.Equal(at.Add(time.Minute)) || len(g.Runs) != 0 || g.Delivery != "" {
		t.Errorf("replaced github delivery = %+v, want the 401 alone", g)
	}
	if len(g.Message) > store.MaxDeliveryMessage || !utf8.ValidString(g.Message) || !strings.HasSuffix(g.Message, "…") {
		t.Errorf("message of %d bytes (valid UTF-8 %t), want at most %d ending in …", len(g.Message), utf8.ValidString(g.Message), store.MaxDeliveryMessage)
	}
}

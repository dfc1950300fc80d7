package main

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	ct "github.com/refit-dev/refit/internal/catalog/catalogtest"
	"github.com/refit-dev/refit/internal/client"
)

// TestRPMBaseCLI: Rocky Linux-like bases whose rpm databases rpm itself
// wrote (rpmdb.sqlite, with rpmbuild-made packages), in refit serve's
// embedded registry. refit image packages lists their packages with
// rpm's epoch:version-release; refit watches the reference, and when the
// tag moves to a base where one package changed, refit bases diff shows
// exactly that change — read by the refit binary's child parser, as in
// production. Skipped without rpm and rpmbuild (apt-get install rpm).
func TestRPMBaseCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the refit binary and runs refit serve")
	}
	pkgs := func(openssl string) []ct.Pkg {
		return []ct.Pkg{{Name: "openssl-libs", Version: openssl, Source: "openssl"}, {Name: "bash", Version: "5.1.8-6.el9"}, {Name: "tzdata", Version: "2024a-1.el9"}}
	}
	oldDB, err := ct.RPMDB(t.TempDir(), pkgs("1:3.0.7-24.el9")...)
	if errors.Is(err, ct.ErrNoRPM) {
		t.Skip("skipped: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	newDB, err := ct.RPMDB(t.TempDir(), pkgs("1:3.0.7-27.el9")...)
	if err != nil {
		t.Fatal(err)
	}
	bin := refitBinary(t)
	data := t.TempDir()
	apiAddr, reg := freePort(t), freePort(t)
	startServe(t, bin, "serve", "--data", data, "--listen", apiAddr, "--registry-listen", reg,
		"--poll-interval", "1s", "--debounce", "-1s", "--buildkit", "unix://"+filepath.Join(data, "no-buildkitd.sock"))
	token := readToken(t, data)
	c := client.New("http://"+apiAddr, token)
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := cli(t, bin, apiAddr, token, "", args...)
		if err != nil {
			t.Fatalf("refit %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		lines := strings.Split(out, "\n")
		for i, l := range lines {
			lines[i] = strings.Join(strings.Fields(l), " ")
		}
		return strings.Join(lines, "\n")
	}
	ref := reg + "/base/rocky:9"
	push := func(db []byte) string {
		t.Helper()
		img := ct.RedHat("rocky", "9.3", db, "")
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	first := push(oldDB)

	out := run("image", "packages", ref)
	t.Logf("refit image packages %s:\n%s", ref, out)
	for _, want := range []string{"os rocky 9.3", "database rpm", "PACKAGE VERSION ARCH TYPE",
		"bash 5.1.8-6.el9 noarch rpm", "openssl-libs 1:3.0.7-24.el9 noarch rpm", "tzdata 2024a-1.el9 noarch rpm"} {
		if !slices.Contains(strings.Split(out, "\n"), want) {
			t.Errorf("refit image packages lacks the line %q:\n%s", want, out)
		}
	}

	run("watch", "add", ref)
	waitIndexed(t, c, ref, first)
	second := push(newDB)
	waitIndexed(t, c, ref, second)
	deadline := time.Now().Add(time.Minute)
	for {
		out, _, err := cli(t, bin, apiAddr, token, "", "bases", "diff", ref)
		if err == nil && strings.Contains(out, short(second)) {
			t.Logf("refit bases diff %s:\n%s", ref, out)
			var changes []string
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) > 0 && slices.Contains([]string{"changed", "added", "removed", "packages"}, f[0]) {
					changes = append(changes, strings.Join(f, " "))
				}
			}
			if want := []string{"changed openssl-libs (noarch) 1:3.0.7-24.el9 → 1:3.0.7-27.el9"}; !slices.Equal(changes, want) {
				t.Errorf("refit bases diff shows %q, want exactly %q", changes, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("refit bases diff never showed the move to %s: %v\n%s", second, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

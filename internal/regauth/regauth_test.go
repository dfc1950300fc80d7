package regauth

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/refit-dev/refit/internal/regclient"
	"github.com/refit-dev/refit/internal/store"
)

const password = "hunter2-very-secret"

// The registry client drops sessions built on a login that changed: it
// finds Credentials' Generation through this interface.
var _ regclient.Generations = (*Credentials)(nil)

func setup(t *testing.T, key []byte, fallback authn.Keychain) (*Credentials, *store.Store) {
	t.Helper()
	s, err := store.Open(t.Context(), store.Config{Path: filepath.Join(t.TempDir(), "refit.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := New(Config{Store: s, Key: key, Fallback: fallback})
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

// fixed is a keychain that always answers with one user.
type fixed string

func (f fixed) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig{Username: string(f), Password: "from-docker-config"}), nil
}

func TestPutLookupAndFallback(t *testing.T) {
	c, s := setup(t, testKey(1), fixed("docker-config-user"))
	ctx := t.Context()
	if g := c.Generation(); g != 0 {
		t.Errorf("Generation before any change = %d, want 0", g)
	}
	if _, err := c.Put(ctx, "registry.example:5000", "robot", ""); err == nil || c.Generation() != 0 {
		t.Errorf("Put of an empty password = %v, generation %d; want an error, and no change", err, c.Generation())
	}
	cred, err := c.Put(ctx, "Registry.Example:5000", "robot", password)
	if err != nil {
		t.Fatal(err)
	}
	if cred.Host != "registry.example:5000" || cred.Username != "robot" || cred.Sealed != nil {
		t.Errorf("Put returned %+v", cred)
	}
	if g := c.Generation(); g != 1 {
		t.Errorf("Generation after a Put = %d, want 1 (the change announced once)", g)
	}

	// What the database holds is not the password.
	var sealed []byte
	if err := s.DB().QueryRow(`SELECT sealed FROM registry_credentials`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(password)) || bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("the stored credential contains the password in the clear")
	}

	// The keychain answers with the stored login for that registry...
	reg, _ := name.NewRegistry("registry.example:5000")
	got := authConfig(t, c, reg)
	if got.Username != "robot" || got.Password != password {
		t.Errorf("keychain for %s: %s/%s, want the stored login", reg, got.Username, got.Password)
	}
	// ...and with the Docker config for any other.
	other, _ := name.NewRegistry("ghcr.io")
	if got := authConfig(t, c, other); got.Username != "docker-config-user" {
		t.Errorf("keychain for ghcr.io: %s, want the fallback's", got.Username)
	}

	// Docker Hub's names are one host.
	if _, err := c.Put(ctx, "index.docker.io", "hubuser", "hubtoken"); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"docker.io", "registry-1.docker.io", "index.docker.io"} {
		if u, _, ok, err := c.Lookup(ctx, h); !ok || err != nil || u != "hubuser" {
			t.Errorf("Lookup(%s) = %s, %v, %v; want hubuser", h, u, ok, err)
		}
	}

	list, err := c.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v", list, err)
	}
	if err := c.Delete(ctx, "registry.example:5000"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := c.Lookup(ctx, "registry.example:5000"); ok {
		t.Error("credentials still there after Delete")
	}
	if g := c.Generation(); g != 3 {
		t.Errorf("Generation after two Puts and a Delete = %d, want 3", g)
	}
	if err := c.Delete(ctx, "registry.example:5000"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if g := c.Generation(); g != 3 {
		t.Errorf("Generation after a Delete of nothing = %d, want 3 (no change)", g)
	}
}

func authConfig(t *testing.T, kc authn.Keychain, res authn.Resource) authn.AuthConfig {
	t.Helper()
	a, err := kc.Resolve(res)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return *cfg
}

// TestSealedBoundToKeyHostAndUser: another key, or the sealed password
// moved to another host or user name, does not open — with an error that
// names the host and not the password.
func TestSealedBoundToKeyHostAndUser(t *testing.T) {
	c, s := setup(t, testKey(1), nil)
	ctx := t.Context()
	if _, err := c.Put(ctx, "a.example", "alice", password); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "b.example", "bob", "other"); err != nil {
		t.Fatal(err)
	}

	wrongKey, err := New(Config{Store: s, Key: testKey(2)})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = wrongKey.Lookup(ctx, "a.example")
	if err == nil || !strings.Contains(err.Error(), "a.example") || !strings.Contains(err.Error(), "secret key") {
		t.Errorf("Lookup with another key = %v, want an error naming the host and the key", err)
	}

	// Move a's sealed password to b's row.
	if _, err := s.DB().Exec(`UPDATE registry_credentials SET sealed = (SELECT sealed FROM registry_credentials WHERE host = 'a.example') WHERE host = 'b.example'`); err != nil {
		t.Fatal(err)
	}
	if _, pw, _, err := c.Lookup(ctx, "b.example"); err == nil {
		t.Errorf("a sealed password moved to another host opened: %q", pw)
	}
	// Change a's user name.
	if _, err := s.DB().Exec(`UPDATE registry_credentials SET username = 'mallory' WHERE host = 'a.example'`); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = c.Lookup(ctx, "a.example")
	if err == nil || strings.Contains(err.Error(), password) {
		t.Errorf("Lookup after the user name changed = %v, want an error without the password", err)
	}
	if _, err := c.Resolve(mustRegistry(t, "a.example")); err == nil {
		t.Error("the keychain answered for a credential that does not open")
	}
}

func mustRegistry(t *testing.T, h string) name.Registry {
	r, err := name.NewRegistry(h)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPutRejectsBadInput(t *testing.T) {
	c, _ := setup(t, testKey(1), nil)
	for _, in := range []struct{ host, user, pass, want string }{
		{"", "u", "p", "registry host"},
		{"https://r.example", "u", "p", "registry host"},
		{"r.example/path", "u", "p", "registry host"},
		{"user@r.example", "u", "p", "registry host"},
		{"r.example", "", "p", "user name"},
		{"r.example", "a\nb", "p", "user name"},
		{"r.example", "u", "", "empty password"},
		{"r.example", "u", strings.Repeat("x", MaxPasswordBytes+1), "longer than"},
	} {
		_, err := c.Put(t.Context(), in.host, in.user, in.pass)
		if err == nil || !strings.Contains(err.Error(), in.want) {
			t.Errorf("Put(%q, %q, %d bytes) = %v, want an error about %s", in.host, in.user, len(in.pass), err, in.want)
		}
	}
}

func TestLoadKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret.key")
	k1, err := LoadKey(path)
	if err != nil || len(k1) != KeySize {
		t.Fatalf("LoadKey (new) = %d bytes, %v", len(k1), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	k2, err := LoadKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("LoadKey (again) = %x, %v; want the same key", k2, err)
	}
	os.WriteFile(path, []byte("not hex\n"), 0o600)
	if _, err := LoadKey(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadKey of a bad file = %v, want an error naming it", err)
	}
}

func TestNewRejectsShortKey(t *testing.T) {
	if _, err := New(Config{Store: &store.Store{}, Key: []byte("short")}); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}

// FuzzHost: any input gives a host or an ErrInvalid, and a host is its
// own normal form.
func FuzzHost(f *testing.F) {
	for _, s := range []string{"ghcr.io", "Registry.Example:5000", "index.docker.io", "127.0.0.1:5000", "[::1]:5000", "a/b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := Host(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Host(%q) = %v, not ErrInvalid", in, err)
			}
			return
		}
		again, err := Host(h)
		if err != nil || again != h {
			t.Fatalf("Host(%q) = %q, but Host(%q) = %q, %v", in, h, h, again, err)
		}
	})
}

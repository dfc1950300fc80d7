// Package regauth owns registry credentials stored in refit: sealing
// passwords with the server's secret key (AES-256-GCM, bound to the host
// and user name, so a sealed password copied to another row does not
// open), and handing them out — before the Docker config and its
// credential helpers — to whatever talks to registries (the registry
// client's keychain, BuildKit's session). Passwords are never returned by the API,
// logged or put in errors.
package regauth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/refit-dev/refit/internal/store"
)

// KeySize is the secret key's length in bytes (AES-256).
const KeySize = 32

// MaxPasswordBytes bounds a stored password or token.
const MaxPasswordBytes = 16 << 10

// ErrInvalid marks a credential or host refit refuses to store (the
// error's text says why).
var ErrInvalid = errors.New("invalid registry credential")

// sealVersion starts every sealed value, for a future change of scheme.
const sealVersion = 1

// LoadKey reads the secret key at path (hex, one line), creating it with
// a random key and mode 0600 when the file does not exist.
func LoadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, KeySize)
		rand.Read(key)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("creating secret key %s: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) { // created meanwhile: read that one
			return LoadKey(path)
		}
		if err != nil {
			return nil, fmt.Errorf("creating secret key %s: %w", path, err)
		}
		if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("writing secret key %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("writing secret key %s: %w", path, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading secret key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("secret key %s: want %d bytes as hex on one line", path, KeySize)
	}
	return key, nil
}

// credStore is what regauth needs of *store.Store.
type credStore interface {
	PutRegistryCredential(ctx context.Context, c store.RegistryCredential) error
	RegistryCredential(ctx context.Context, host string) (store.RegistryCredential, error)
	ListRegistryCredentials(ctx context.Context) ([]store.RegistryCredential, error)
	DeleteRegistryCredential(ctx context.Context, host string) error
	PutGitSecret(ctx context.Context, g store.GitSecret) error
	GitSecret(ctx context.Context, key string) (store.GitSecret, error)
	ListGitSecrets(ctx context.Context) ([]store.GitSecret, error)
	DeleteGitSecret(ctx context.Context, key string) error
}

var _ credStore = (*store.Store)(nil)

// Credentials seals, stores and looks up registry credentials. It is safe
// for concurrent use.
type Credentials struct {
	store      credStore
	aead       cipher.AEAD
	fallback   authn.Keychain
	generation atomic.Uint64
}

// Config configures New.
type Config struct {
	// Store keeps the sealed credentials (required).
	Store credStore
	// Key is the secret key, KeySize bytes (required; see LoadKey).
	Key []byte
	// Fallback answers for hosts without stored credentials; nil =
	// authn.DefaultKeychain (Docker config and credential helpers).
	Fallback authn.Keychain
}

// New returns Credentials configured by cfg.
func New(cfg Config) (*Credentials, error) {
	if cfg.Store == nil {
		return nil, errors.New("regauth: no store")
	}
	if len(cfg.Key) != KeySize {
		return nil, fmt.Errorf("regauth: secret key is %d bytes, want %d", len(cfg.Key), KeySize)
	}
	block, err := aes.NewCipher(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("regauth: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("regauth: %w", err)
	}
	c := &Credentials{store: cfg.Store, aead: aead, fallback: cfg.Fallback}
	if c.fallback == nil {
		c.fallback = authn.DefaultKeychain
	}
	return c, nil
}

// Host normalizes a registry host as refit keys credentials: lower case,
// and Docker Hub's names (docker.io, index.docker.io,
// registry-1.docker.io) as "docker.io". It returns an error naming host
// when it is no registry host[:port].
func Host(host string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(host))
	if h == "" || len(h) > 255 || strings.ContainsAny(h, "/@ ") {
		return "", fmt.Errorf("%w: registry host %q: want host[:port], without scheme, path or user", ErrInvalid, host)
	}
	r, err := name.NewRegistry(h, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("%w: registry host %q: %v", ErrInvalid, host, err)
	}
	switch r.RegistryStr() {
	case name.DefaultRegistry, "docker.io", "registry-1.docker.io":
		return "docker.io", nil
	}
	return r.RegistryStr(), nil
}

// Put seals password and stores it with username for host, replacing any
// credential the host had.
func (c *Credentials) Put(ctx context.Context, host, username, password string) (store.RegistryCredential, error) {
	h, err := Host(host)
	if err != nil {
		return store.RegistryCredential{}, err
	}
	switch {
	case username == "" || len(username) > 1024 || strings.ContainsAny(username, "\r\n\x00"):
		return store.RegistryCredential{}, fmt.Errorf("%w: credentials for %s: user name must be 1-1024 bytes on one line", ErrInvalid, h)
	case password == "":
		return store.RegistryCredential{}, fmt.Errorf("%w: credentials for %s: empty password", ErrInvalid, h)
	case len(password) > MaxPasswordBytes:
		return store.RegistryCredential{}, fmt.Errorf("%w: credentials for %s: password longer than %d bytes", ErrInvalid, h, MaxPasswordBytes)
	}
	cred := store.RegistryCredential{Host: h, Username: username, Sealed: c.seal(h, username, password),
		UpdatedAt: time.Now().UTC()}
	if err := c.store.PutRegistryCredential(ctx, cred); err != nil {
		return store.RegistryCredential{}, err
	}
	c.generation.Add(1)
	cred.Sealed = nil
	return cred, nil
}

// Delete removes host's stored credential (store.ErrNotFound when none).
func (c *Credentials) Delete(ctx context.Context, host string) error {
	h, err := Host(host)
	if err != nil {
		return err
	}
	if err := c.store.DeleteRegistryCredential(ctx, h); err != nil {
		return err
	}
	c.generation.Add(1)
	return nil
}

// Generation counts the changes made to the stored credentials (each Put
// and Delete), starting at 0, so that whoever keeps registry sessions
// built from them (the registry client) can tell when those are stale.
func (c *Credentials) Generation() uint64 {
	return c.generation.Load()
}

// List returns the stored credentials, without passwords.
func (c *Credentials) List(ctx context.Context) ([]store.RegistryCredential, error) {
	return c.store.ListRegistryCredentials(ctx)
}

// Lookup returns the stored user name and password for host; ok is false
// when refit stores none for it (the Docker config may still have some).
func (c *Credentials) Lookup(ctx context.Context, host string) (username, password string, ok bool, err error) {
	h, err := Host(host)
	if err != nil {
		return "", "", false, err
	}
	cred, err := c.store.RegistryCredential(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	password, err = c.open(h, cred.Username, cred.Sealed)
	if err != nil {
		return "", "", false, err
	}
	return cred.Username, password, true, nil
}

// Resolve implements authn.Keychain: refit's stored credentials for the
// registry, else the fallback keychain.
func (c *Credentials) Resolve(res authn.Resource) (authn.Authenticator, error) {
	return c.ResolveContext(context.Background(), res)
}

// ResolveContext implements authn.ContextKeychain.
func (c *Credentials) ResolveContext(ctx context.Context, res authn.Resource) (authn.Authenticator, error) {
	user, pass, ok, err := c.Lookup(ctx, res.RegistryStr())
	if err != nil {
		return nil, err
	}
	if ok {
		return authn.FromConfig(authn.AuthConfig{Username: user, Password: pass}), nil
	}
	return authn.Resolve(ctx, c.fallback, res)
}

// seal encrypts password for (host, username).
func (c *Credentials) seal(host, username, password string) []byte {
	n := c.aead.NonceSize()
	out := make([]byte, 1+n, 1+n+len(password)+c.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:])
	return c.aead.Seal(out, out[1:], []byte(password), aad(host, username))
}

// open decrypts what seal sealed for (host, username).
func (c *Credentials) open(host, username string, sealed []byte) (string, error) {
	n := c.aead.NonceSize()
	if len(sealed) < 1+n+c.aead.Overhead() || sealed[0] != sealVersion {
		return "", fmt.Errorf("credentials for %s are damaged (unknown format)", host)
	}
	plain, err := c.aead.Open(nil, sealed[1:1+n], sealed[1+n:], aad(host, username))
	if err != nil {
		return "", fmt.Errorf("credentials for %s cannot be decrypted: the secret key is not the one they were stored with, or they were altered", host)
	}
	return string(plain), nil
}

func aad(host, username string) []byte {
	return []byte("refit registry credential\x00" + host + "\x00" + username)
}

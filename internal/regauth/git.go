package regauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/task"
)

// MaxGitSecretBytes bounds a git webhook secret.
const MaxGitSecretBytes = 1024

// PutGitSecret seals secret and stores it as the webhook secret of the
// repository at repo (keyed by task.RepoKey, so its https, ssh and .git
// forms share it), replacing any it had.
func (c *Credentials) PutGitSecret(ctx context.Context, repo, secret string) (store.GitSecret, error) {
	key := task.RepoKey(repo)
	switch {
	case strings.TrimSpace(repo) == "" || len(repo) > 2048 || strings.ContainsAny(repo, "\r\n\x00"):
		return store.GitSecret{}, fmt.Errorf("%w: repository %q: want a git URL on one line", ErrInvalid, repo)
	case secret == "":
		return store.GitSecret{}, fmt.Errorf("%w: webhook secret of %s: empty secret", ErrInvalid, key)
	case len(secret) > MaxGitSecretBytes:
		return store.GitSecret{}, fmt.Errorf("%w: webhook secret of %s: longer than %d bytes", ErrInvalid, key, MaxGitSecretBytes)
	}
	g := store.GitSecret{RepoKey: key, Repo: strings.TrimSpace(repo), Sealed: c.sealGit(key, secret), UpdatedAt: time.Now().UTC()}
	if err := c.store.PutGitSecret(ctx, g); err != nil {
		return store.GitSecret{}, err
	}
	g.Sealed = nil
	return g, nil
}

// GitSecret returns the webhook secret of the first of repos that has
// one, and that repository; ok is false when none has.
func (c *Credentials) GitSecret(ctx context.Context, repos []string) (repo, secret string, ok bool, err error) {
	for _, r := range repos {
		key := task.RepoKey(r)
		g, err := c.store.GitSecret(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", "", false, err
		}
		s, err := c.openGit(key, g.Sealed)
		if err != nil {
			return "", "", false, err
		}
		return r, s, true, nil
	}
	return "", "", false, nil
}

// ListGitSecrets returns the repositories with a webhook secret, without
// the secrets.
func (c *Credentials) ListGitSecrets(ctx context.Context) ([]store.GitSecret, error) {
	return c.store.ListGitSecrets(ctx)
}

// DeleteGitSecret removes the webhook secret of repo (store.ErrNotFound
// when it has none).
func (c *Credentials) DeleteGitSecret(ctx context.Context, repo string) error {
	return c.store.DeleteGitSecret(ctx, task.RepoKey(repo))
}

// sealGit seals a webhook secret, bound to the repository's key and
// apart from registry passwords (another associated data).
func (c *Credentials) sealGit(key, secret string) []byte {
	n := c.aead.NonceSize()
	out := make([]byte, 1+n, 1+n+len(secret)+c.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:])
	return c.aead.Seal(out, out[1:], []byte(secret), gitAAD(key))
}

func (c *Credentials) openGit(key string, sealed []byte) (string, error) {
	n := c.aead.NonceSize()
	if len(sealed) < 1+n+c.aead.Overhead() || sealed[0] != sealVersion {
		return "", fmt.Errorf("webhook secret of %s is damaged (unknown format)", key)
	}
	plain, err := c.aead.Open(nil, sealed[1:1+n], sealed[1+n:], gitAAD(key))
	if err != nil {
		return "", fmt.Errorf("webhook secret of %s cannot be decrypted: the secret key is not the one it was stored with, or it was altered", key)
	}
	return string(plain), nil
}

func gitAAD(key string) []byte { return []byte("refit git webhook secret\x00" + key) }

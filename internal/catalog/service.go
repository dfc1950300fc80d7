package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/refit-dev/refit/internal/store"
)

// Images fetches images; *regclient.Client is one.
type Images interface {
	Image(ctx context.Context, ref, platform string, timeout time.Duration, fn func(ctx context.Context, img v1.Image) error) error
}

// cache is where catalogs and diffs are kept; *store.Store is one. Both
// getters return store.ErrNotFound for what is not kept.
type cache interface {
	Catalog(ctx context.Context, digest string) ([]byte, error)
	PutCatalog(ctx context.Context, digest string, data []byte) error
	ImageDiff(ctx context.Context, oldDigest, newDigest string) ([]byte, error)
	PutImageDiff(ctx context.Context, oldDigest, newDigest string, data []byte) error
}

var _ cache = (*store.Store)(nil)

// Config configures a Service.
type Config struct {
	// Images fetches the images (required).
	Images Images
	// Store keeps a catalog per platform manifest digest and a diff per
	// digest pair (required).
	Store cache
	// Limits bound reading one image; zero fields take their defaults.
	Limits Limits
	// Vulns, when set, adds the vulnerabilities each diff fixes and
	// introduces; Ecosystem maps an OS release to its OSV ecosystem (both
	// or neither).
	Vulns     Vulns
	Ecosystem Ecosystem
}

// Service catalogs images and diffs them, each platform manifest digest
// at most once: a catalog is read from the store when it was made before
// (by this process or another), and concurrent requests for the same
// digest share one read. It is safe for concurrent use.
type Service struct {
	cfg Config

	mu      sync.Mutex
	flights map[string]*flight

	reads atomic.Int64
}

type flight struct {
	done chan struct{}
	c    Catalog
	err  error
}

// NewService returns a Service configured by cfg.
func NewService(cfg Config) (*Service, error) {
	if cfg.Images == nil || cfg.Store == nil {
		return nil, errors.New("catalog: Images and Store are required")
	}
	return &Service{cfg: cfg, flights: map[string]*flight{}}, nil
}

// Reads returns how many images this Service has read from a registry
// (catalogs served from the store or a shared read do not count).
func (s *Service) Reads() int64 { return s.reads.Load() }

// Catalog returns the catalog of ref (a normalized reference by tag or
// digest) for platform (see regclient.Client.Image). A reference by the
// platform manifest's digest that was catalogued before costs no
// request.
func (s *Service) Catalog(ctx context.Context, ref, platform string) (Catalog, error) {
	if d, ok := digestOf(ref); ok {
		if c, err := s.cached(ctx, d); err == nil {
			return c, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return Catalog{}, err
		}
	}
	var out Catalog
	timeout := s.cfg.Limits.withDefaults().Time + 30*time.Second
	err := s.cfg.Images.Image(ctx, ref, platform, timeout, func(ctx context.Context, img v1.Image) error {
		d, err := img.Digest()
		if err != nil {
			return fmt.Errorf("reading image digest: %w", err)
		}
		out, err = s.once(ctx, d.String(), img)
		return err
	})
	if err != nil {
		return Catalog{}, fmt.Errorf("cataloguing %s: %w", ref, err)
	}
	if out.Platform == "" {
		out.Platform = platform
	}
	return out, nil
}

// once returns the catalog of digest: stored, shared with a read in
// flight, or read from img now and stored.
func (s *Service) once(ctx context.Context, digest string, img Image) (Catalog, error) {
	if c, err := s.cached(ctx, digest); err == nil {
		return c, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return Catalog{}, err
	}
	s.mu.Lock()
	f, ok := s.flights[digest]
	if !ok {
		f = &flight{done: make(chan struct{})}
		s.flights[digest] = f
	}
	s.mu.Unlock()
	if ok {
		select {
		case <-f.done:
			return f.c, f.err
		case <-ctx.Done():
			return Catalog{}, ctx.Err()
		}
	}
	defer func() {
		s.mu.Lock()
		delete(s.flights, digest)
		s.mu.Unlock()
		close(f.done)
	}()
	// A read that ended between the cache check above and this flight
	// has stored its catalog (it stores before it lands): look again.
	if c, err := s.cached(ctx, digest); err == nil {
		f.c = c
		return c, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		f.err = err
		return Catalog{}, err
	}
	s.reads.Add(1)
	f.c, f.err = Read(ctx, img, s.cfg.Limits)
	if f.err != nil {
		return Catalog{}, f.err
	}
	data, err := json.Marshal(f.c)
	if err != nil {
		f.err = fmt.Errorf("encoding catalog: %w", err)
		return Catalog{}, f.err
	}
	if err := s.cfg.Store.PutCatalog(context.WithoutCancel(ctx), digest, data); err != nil {
		f.err = err
		return Catalog{}, err
	}
	return f.c, nil
}

func (s *Service) cached(ctx context.Context, digest string) (Catalog, error) {
	data, err := s.cfg.Store.Catalog(ctx, digest)
	if err != nil {
		return Catalog{}, err
	}
	var c Catalog
	if err := json.Unmarshal(data, &c); err != nil {
		return Catalog{}, fmt.Errorf("decoding stored catalog of %s: %w", digest, err)
	}
	return c, nil
}

// Diff returns the diff from the image oldRef to newRef for platform,
// cataloguing each as Catalog does. oldRef "" means the platform is new
// to the reference: the diff is Added's, every package added. A diff between two digests is
// computed once and stored; with Vulns configured it carries the
// vulnerabilities the change fixes and introduces, looked up at each
// read (so a diff stored before a vulnerability database was imported
// names them once it is).
func (s *Service) Diff(ctx context.Context, oldRef, newRef, platform string) (Diff, error) {
	if oldRef == "" {
		return s.added(ctx, newRef, platform)
	}
	od, ok1 := digestOf(oldRef)
	nd, ok2 := digestOf(newRef)
	if ok1 && ok2 {
		if d, err := s.cachedDiff(ctx, od, nd); err == nil {
			return s.withVulns(ctx, d)
		} else if !errors.Is(err, store.ErrNotFound) {
			return Diff{}, err
		}
	}
	old, err := s.Catalog(ctx, oldRef, platform)
	if err != nil {
		return Diff{}, err
	}
	cur, err := s.Catalog(ctx, newRef, platform)
	if err != nil {
		return Diff{}, err
	}
	if d, err := s.cachedDiff(ctx, old.Digest, cur.Digest); err == nil {
		return s.withVulns(ctx, d)
	}
	return s.put(ctx, Compare(old, cur), old.OS, cur.OS)
}

// put stores the diff d, made now, without vulnerabilities (see
// withVulns), and returns it with those of moving from the OS release
// old to cur.
func (s *Service) put(ctx context.Context, d Diff, old, cur OS) (Diff, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return Diff{}, fmt.Errorf("encoding diff: %w", err)
	}
	if err := s.cfg.Store.PutImageDiff(context.WithoutCancel(ctx), d.Old, d.New, data); err != nil {
		return Diff{}, err
	}
	if err := AddVulns(ctx, &d, old, cur, s.cfg.Vulns, s.cfg.Ecosystem); err != nil {
		return Diff{}, err
	}
	return d, nil
}

// added is Diff for a platform new to its reference, stored under the
// old digest "".
func (s *Service) added(ctx context.Context, newRef, platform string) (Diff, error) {
	if nd, ok := digestOf(newRef); ok {
		if d, err := s.cachedDiff(ctx, "", nd); err == nil {
			return s.withVulns(ctx, d)
		} else if !errors.Is(err, store.ErrNotFound) {
			return Diff{}, err
		}
	}
	cur, err := s.Catalog(ctx, newRef, platform)
	if err != nil {
		return Diff{}, err
	}
	return s.put(ctx, Added(cur), OS{}, cur.OS) // Added's Old is ""
}

// StoredDiff returns the diff from oldDigest to newDigest if one was
// computed, else store.ErrNotFound. It makes no registry request.
func (s *Service) StoredDiff(ctx context.Context, oldDigest, newDigest string) (Diff, error) {
	d, err := s.cachedDiff(ctx, oldDigest, newDigest)
	if err != nil {
		return Diff{}, err
	}
	return s.withVulns(ctx, d)
}

// withVulns adds to a stored diff what the vulnerability database says
// now. The OS releases are the diff's when they changed, else the new
// image's stored catalog's.
func (s *Service) withVulns(ctx context.Context, d Diff) (Diff, error) {
	d.Vulns = nil // a diff stored by an older refit may carry some
	if s.cfg.Vulns == nil || s.cfg.Ecosystem == nil {
		return d, nil
	}
	var old, cur OS
	if d.OS != nil {
		old, cur = d.OS.Old, d.OS.New
	} else {
		c, err := s.cached(ctx, d.New)
		if errors.Is(err, store.ErrNotFound) {
			return d, nil
		}
		if err != nil {
			return Diff{}, err
		}
		old, cur = c.OS, c.OS
	}
	if err := AddVulns(ctx, &d, old, cur, s.cfg.Vulns, s.cfg.Ecosystem); err != nil {
		return Diff{}, err
	}
	return d, nil
}

func (s *Service) cachedDiff(ctx context.Context, oldDigest, newDigest string) (Diff, error) {
	data, err := s.cfg.Store.ImageDiff(ctx, oldDigest, newDigest)
	if err != nil {
		return Diff{}, err
	}
	var d Diff
	if err := json.Unmarshal(data, &d); err != nil {
		return Diff{}, fmt.Errorf("decoding stored diff: %w", err)
	}
	return d, nil
}

// digestOf returns the digest of a reference by digest.
func digestOf(ref string) (string, bool) {
	_, d, ok := strings.Cut(ref, "@")
	return d, ok && strings.HasPrefix(d, "sha256:")
}

// DigestRef returns the reference to digest in ref's repository:
// "r.example/app:1" and "sha256:ab…" give "r.example/app@sha256:ab…".
func DigestRef(ref, digest string) (string, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("parsing image reference %s: %w", ref, err)
	}
	return r.Context().Name() + "@" + digest, nil
}

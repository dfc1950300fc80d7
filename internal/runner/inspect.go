package runner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/source"
	"github.com/refit-dev/refit/internal/task"
)

// Inspect checks that a task's source can be read and its Dockerfile
// parsed, and returns the Dockerfile's bases. A git source is fetched at
// its ref into a temporary directory (bounded to one minute).
func (r *Runner) Inspect(ctx context.Context, spec task.Spec) ([]dockerfile.Base, error) {
	spec = spec.Defaults()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var dir string
	if spec.Source.Git != "" {
		tmp, err := os.MkdirTemp(r.cfg.WorkDir, "inspect-")
		if err != nil {
			return nil, fmt.Errorf("inspecting source: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "src")
	}
	root, _, err := r.fetchSource(ctx, spec, "", dir)
	if err != nil {
		return nil, err
	}
	src, err := readSource(root, spec)
	if err != nil {
		return nil, err
	}
	src.Close()
	return src.parsed.Bases, nil
}

// fetchSource returns the root directory of the task's source: for a git
// source, commit sha (resolved from the ref when "") checked out into
// dir; for a dir source, the directory's real path, if the server's
// SourceDirs policy allows it (dir is unused). Errors name the field.
func (r *Runner) fetchSource(ctx context.Context, spec task.Spec, sha, dir string) (string, source.Commit, error) {
	if spec.Source.Git == "" {
		real, err := r.cfg.SourceDirs.Check(spec.Source.Dir)
		if err != nil {
			return "", source.Commit{}, fmt.Errorf("source.dir: %w", err)
		}
		return real, source.Commit{}, nil
	}
	if sha == "" {
		var err error
		if sha, err = source.Resolve(ctx, spec.Source.Git, spec.Source.Ref); err != nil {
			return "", source.Commit{}, fmt.Errorf("source.git: %w", err)
		}
	}
	c, err := source.Checkout(ctx, spec.Source.Git, sha, dir)
	if err != nil {
		return "", source.Commit{}, fmt.Errorf("source.git: %w", err)
	}
	return dir, c, nil
}

// sourceFiles is what a build uses from its source, every piece read
// inside the source's root (see source.Within): the context directory,
// opened as a root of its own, and the Dockerfile and ignore file as read.
type sourceFiles struct {
	// context is the build context; Close closes it.
	context *os.Root
	// dockerfile is the Dockerfile as read, and parsed what it says.
	dockerfile []byte
	parsed     *dockerfile.Result
	// ignore is the context's ignore patterns: the Dockerfile's own
	// <Dockerfile>.dockerignore if it has one, else the context's
	// .dockerignore; nil when neither exists.
	ignore []byte
}

// Close releases the context directory.
func (s *sourceFiles) Close() error { return s.context.Close() }

// readSource opens the task's context and reads its Dockerfile inside the
// source tree at root. A path that leaves the tree (by "..", or a symlink
// to an absolute path or above the root) is refused; symlinks that stay
// inside are followed. Errors name the field and the path as written in
// the source, never a link's target or a file's content; a Dockerfile
// that does not parse gives a *dockerfile.Error.
func readSource(root string, spec task.Spec) (*sourceFiles, error) {
	tree, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("opening the source: %w", err)
	}
	defer tree.Close()

	ctxDir, err := source.OpenDir(tree, spec.Context)
	if err != nil {
		return nil, fmt.Errorf("context %w", err)
	}
	src := &sourceFiles{context: ctxDir}
	ok := false
	defer func() {
		if !ok {
			src.Close()
		}
	}()

	rel := path.Join(spec.Context, spec.Dockerfile)
	if src.dockerfile, err = source.ReadFile(tree, rel, dockerfile.MaxSize); err != nil {
		return nil, fmt.Errorf("dockerfile %w", err)
	}
	for _, ignore := range []string{rel + ".dockerignore", path.Join(spec.Context, ".dockerignore")} {
		b, err := source.ReadFile(tree, ignore, dockerfile.MaxSize)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dockerignore %w", err)
		}
		src.ignore = b
		break
	}
	src.parsed, err = dockerfile.Parse(bytes.NewReader(src.dockerfile), dockerfile.Options{BuildArgs: spec.BuildArgs, Target: spec.Target})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	ok = true
	return src, nil
}

// Revisions names, for each spec, what Inspect would read for it besides
// the spec itself, without parsing anything, or "" when that cannot be
// known cheaply:
//
//   - a dir source: the digest of its Dockerfile, read inside the source
//     as Inspect reads it, after the SourceDirs check (each directory
//     checked and each file read once per call);
//   - a git source whose ref is a full commit SHA: that commit;
//   - a git branch or tag: the ref's name. It may have moved since the
//     last inspection, but finding out means asking the remote, on every
//     apply of an unchanged file; what its new commits build on is
//     recorded by the next run (which sets the task's bases, and a
//     change there makes the next apply inspect it again).
//
// Any error gives "" too (Inspect then reports it). Safe for concurrent
// use.
func (r *Runner) Revisions(specs []task.Spec) []string {
	out := make([]string, len(specs))
	type file struct{ dir, rel string }
	files := map[file][]int{}
	for i, spec := range specs {
		spec = spec.Defaults()
		switch {
		case spec.Source.Git != "":
			if commitRE.MatchString(spec.Source.Ref) {
				out[i] = "git:" + spec.Source.Ref
			} else {
				out[i] = "git-ref:" + spec.Source.Ref
			}
		case spec.Source.Dir != "":
			f := file{spec.Source.Dir, path.Join(spec.Context, spec.Dockerfile)}
			files[f] = append(files[f], i)
		}
	}
	var mu sync.Mutex
	roots := map[string]*os.Root{} // nil: refused or unreadable
	defer func() {
		for _, t := range roots {
			if t != nil {
				t.Close()
			}
		}
	}()
	root := func(dir string) *os.Root {
		mu.Lock()
		defer mu.Unlock()
		if t, ok := roots[dir]; ok {
			return t
		}
		var t *os.Root
		if real, err := r.cfg.SourceDirs.Check(dir); err == nil {
			t, _ = os.OpenRoot(real)
		}
		roots[dir] = t
		return t
	}
	work := make(chan file)
	var wg sync.WaitGroup
	for range revisionParallel {
		wg.Go(func() {
			for f := range work {
				tree := root(f.dir)
				if tree == nil {
					continue
				}
				b, err := source.ReadFile(tree, f.rel, dockerfile.MaxSize)
				if err != nil {
					continue
				}
				sum := sha256.Sum256(b)
				rev := "dockerfile:" + hex.EncodeToString(sum[:])
				for _, i := range files[f] {
					out[i] = rev // each i belongs to one file
				}
			}
		})
	}
	for f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	return out
}

// revisionParallel is how many Dockerfiles Revisions reads at once.
const revisionParallel = 4

// commitRE matches a full commit SHA (SHA-1 or SHA-256), which cannot move.
var commitRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

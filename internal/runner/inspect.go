package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
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

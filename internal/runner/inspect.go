package runner

import (
	"context"
	"fmt"
	"os"
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
	root := spec.Source.Dir
	if spec.Source.Git != "" {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		sha, err := source.Resolve(ctx, spec.Source.Git, spec.Source.Ref)
		if err != nil {
			return nil, fmt.Errorf("source.git: %w", err)
		}
		dir, err := os.MkdirTemp(r.cfg.WorkDir, "inspect-")
		if err != nil {
			return nil, fmt.Errorf("inspecting source: %w", err)
		}
		defer os.RemoveAll(dir)
		root = filepath.Join(dir, "src")
		if _, err := source.Checkout(ctx, spec.Source.Git, sha, root); err != nil {
			return nil, fmt.Errorf("source.git: %w", err)
		}
	} else if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("source.dir: %s is not a readable directory", root)
	}
	parsed, err := parseDockerfile(root, spec)
	if err != nil {
		return nil, err
	}
	return parsed.Bases, nil
}

// parseDockerfile reads and parses the task's Dockerfile under root. Its
// errors name the file, relative to the source root.
func parseDockerfile(root string, spec task.Spec) (*dockerfile.Result, error) {
	rel := filepath.Join(spec.Context, spec.Dockerfile)
	f, err := os.Open(filepath.Join(root, rel))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("dockerfile: %s not found in the source", rel)
		}
		return nil, fmt.Errorf("dockerfile: %w", err)
	}
	defer f.Close()
	parsed, err := dockerfile.Parse(f, dockerfile.Options{BuildArgs: spec.BuildArgs, Target: spec.Target})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	return parsed, nil
}

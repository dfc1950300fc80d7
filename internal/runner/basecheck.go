package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/refit-dev/refit/internal/dockerfile"
	"github.com/refit-dev/refit/internal/regclient"
)

// CheckBases resolves each base a task builds on, as a run would, and
// returns a warning for each that cannot be resolved now: "base image X
// not found in registry Y", or why it could not be checked. Nothing is
// refused on its account (a registry may be down, an image pushed
// later); the warnings are for the person creating the task. Bases are
// looked up at once, and for at most checkBasesFor in all, so that a
// registry that does not answer holds up a create by that much only.
// Bases pinned by digest are not looked up.
func (r *Runner) CheckBases(ctx context.Context, bases []dockerfile.Base) []string {
	ctx, cancel := context.WithTimeout(ctx, checkBasesFor)
	defer cancel()
	var refs []string
	for _, b := range bases {
		if !slices.Contains(refs, b.Ref) && !strings.Contains(b.Ref, "@") {
			refs = append(refs, b.Ref)
		}
	}
	warnings := make([]string, len(refs))
	var wg sync.WaitGroup
	for i, ref := range refs {
		wg.Go(func() {
			if _, err := r.cfg.Resolver.Resolve(ctx, ref); err != nil {
				warnings[i] = resolveError(ref, err).Error()
			}
		})
	}
	wg.Wait()
	return slices.DeleteFunc(warnings, func(w string) bool { return w == "" })
}

// checkBasesFor bounds CheckBases.
const checkBasesFor = 10 * time.Second

// resolveError says what a failure to resolve base ref means for a user:
// a registry's 404 is "base image REF not found in registry HOST"; any
// other failure keeps the registry client's words.
func resolveError(ref string, err error) error {
	var re *regclient.Error
	if errors.As(err, &re) && re.Status == http.StatusNotFound {
		return fmt.Errorf("base image %s not found in registry %s", ref, registryHost(ref))
	}
	return err
}

// registryHost is the registry part of a normalized reference.
func registryHost(ref string) string {
	host, _, _ := strings.Cut(ref, "/")
	return host
}

// Command pushbase pushes a small busybox base image (see
// internal/baseimage) to a registry, standing in for a vendor's base image
// in the quick start: run it again with -patch to move the tag to a
// "patched" digest, as a vendor's OS update does.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/refit-dev/refit/internal/baseimage"
)

func main() {
	to := flag.String("to", "127.0.0.1:5000/base/busybox:1", "image reference to push to")
	patch := flag.String("patch", "", "add a patch layer with this level (moves the tag to a new digest)")
	flag.Parse()
	if err := run(*to, *patch); err != nil {
		fmt.Fprintln(os.Stderr, "pushbase:", err)
		os.Exit(1)
	}
}

func run(to, patch string) error {
	ref, err := name.ParseReference(to)
	if err != nil {
		return fmt.Errorf("parsing %q: %w", to, err)
	}
	img, err := baseimage.Busybox()
	if err != nil {
		return err
	}
	if patch != "" {
		if img, err = baseimage.Patch(img, patch); err != nil {
			return err
		}
	}
	if err := remote.Write(ref, img); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", ref, d)
	return nil
}

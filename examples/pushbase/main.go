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
	keep := flag.Bool("keep", false, "push nothing if the tag already exists (a second quick start keeps the base it left)")
	flag.Parse()
	if err := run(*to, *patch, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "pushbase:", err)
		os.Exit(1)
	}
}

func run(to, patch string, keep bool) error {
	if keep {
		ref, err := name.ParseReference(to, name.Insecure)
		if err != nil {
			return err
		}
		if desc, err := remote.Head(ref); err == nil {
			fmt.Printf("kept %s@%s\n", to, desc.Digest)
			return nil
		}
	}
	_, d, err := baseimage.Push(to, patch)
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", to, d)
	return nil
}

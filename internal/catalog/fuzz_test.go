package catalog_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/refit-dev/refit/internal/catalog"
	ct "github.com/refit-dev/refit/internal/catalog/catalogtest"
)

// FuzzRead feeds arbitrary layer streams (gzip, zstd or plain tar, or
// garbage) to the layer walker under tight limits: it must return, never
// panic, and hold no more than the limits allow.
func FuzzRead(f *testing.F) {
	l := ct.Layer(map[string]string{
		"etc/os-release":          ct.OSRelease("alpine", "3.19", "Alpine"),
		"lib/apk/db/installed":    ct.ApkInstalled(ct.P("musl", "1", "x86_64")),
		"var/lib/dpkg/.wh.status": "",
	})
	rc, _ := l.Compressed()
	gz, _ := io.ReadAll(rc)
	f.Add(gz)
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	body := ct.DpkgStatus(ct.P("a", "1", "amd64"))
	tw.WriteHeader(&tar.Header{Name: "var/lib/dpkg/status", Size: int64(len(body)), Mode: 0o644, Typeflag: tar.TypeReg})
	io.WriteString(tw, body)
	tw.WriteHeader(&tar.Header{Name: "var/lib/dpkg/.wh..wh..opq", Typeflag: tar.TypeReg})
	tw.Close()
	f.Add(plain.Bytes())
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := mutate.AppendLayers(empty.Image, static.NewLayer(b, types.OCILayer))
		if err != nil {
			t.Skip()
		}
		_, _ = catalog.Read(context.Background(), img, catalog.Limits{Bytes: 1 << 20, File: 64 << 10})
	})
}

// A zstd-compressed layer (as BuildKit can push) is read like a gzip one.
func TestReadZstdLayer(t *testing.T) {
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	body := ct.ApkInstalled(ct.P("musl", "1.2.4-r4", "x86_64"))
	tw.WriteHeader(&tar.Header{Name: "lib/apk/db/installed", Size: int64(len(body)), Mode: 0o644, Typeflag: tar.TypeReg})
	io.WriteString(tw, body)
	tw.Close()
	var z bytes.Buffer
	zw, err := zstd.NewWriter(&z)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(plain.Bytes())
	zw.Close()
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(z.Bytes(), types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Read(context.Background(), img, catalog.Limits{})
	if err != nil || len(c.Packages) != 1 || c.Packages[0].Name != "musl" {
		t.Fatalf("Read = %+v, %v; want musl from the zstd layer", c.Packages, err)
	}
}

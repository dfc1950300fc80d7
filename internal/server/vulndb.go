package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/store"
	"github.com/refit-dev/refit/internal/vulndb"
)

// vulnDB is the offline vulnerability database (a *vulndb.DB).
type vulnDB interface {
	Import(ctx context.Context, r io.ReaderAt, size int64) (store.VulnImport, error)
	Status(ctx context.Context) (store.VulnImport, error)
}

var _ vulnDB = (*vulndb.DB)(nil)

// DefaultVulnDBMaxBytes is the default bound of an uploaded OSV export.
const DefaultVulnDBMaxBytes = 1 << 30

// uploadPattern names the spooled uploads in TempDir.
const uploadPattern = "refit-vulndb-*.zip"

// removeStaleUploads removes uploads left in dir by a server that died
// while importing one (up to 1 GiB each).
func removeStaleUploads(dir string, log *slog.Logger) {
	stale, _ := filepath.Glob(filepath.Join(dir, uploadPattern))
	for _, f := range stale {
		if err := os.Remove(f); err != nil {
			log.Warn("removing an upload left by an interrupted vulnerability database import", "file", f, "err", err)
		}
	}
}

func (s *Server) vulnDBStatus(w http.ResponseWriter, r *http.Request) error {
	imp, err := s.cfg.VulnDB.Status(r.Context())
	if errors.Is(err, vulndb.ErrNotImported) {
		return writeJSON(w, http.StatusOK, api.VulnDBStatus{Ecosystems: []api.VulnDBEcosystem{}})
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiVulnDBStatus(imp))
}

// importVulnDB takes an OSV export as the request body: it is spooled to
// a temporary file (at most VulnDBMaxBytes; the zip's directory is at
// its end), imported from there and removed.
func (s *Server) importVulnDB(w http.ResponseWriter, r *http.Request) error {
	limit := s.cfg.VulnDBMaxBytes
	if r.ContentLength > limit {
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("vulnerability database: the export is %s, larger than the %s allowed (refit serve --vulndb-max-bytes)", byteSize(r.ContentLength), byteSize(limit))}
	}
	f, err := os.CreateTemp(s.cfg.TempDir, uploadPattern)
	if err != nil {
		return fmt.Errorf("spooling the export: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("vulnerability database: the export is larger than the %s allowed (refit serve --vulndb-max-bytes)", byteSize(limit))}
	case err != nil:
		return fmt.Errorf("receiving the export: %w", err)
	case n == 0:
		return &invalidError{errors.New("vulnerability database: the request body is empty (want the OSV export's zip)")}
	}
	imp, err := s.cfg.VulnDB.Import(r.Context(), f, n)
	if errors.Is(err, vulndb.ErrRefused) {
		return &invalidError{fmt.Errorf("OSV export refused, the vulnerability database is unchanged: %w", err)}
	}
	if errors.Is(err, store.ErrVulnImportReplaced) {
		return &httpError{http.StatusConflict, "vulnerability database: another import started while this one was written, and the newest wins; this one was dropped (refit vulndb status shows what is current)"}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiVulnDBStatus(imp))
}

func apiVulnDBStatus(imp store.VulnImport) api.VulnDBStatus {
	out := api.VulnDBStatus{Imported: true, ImportedAt: imp.ImportedAt, SHA256: imp.SHA256, Size: imp.Size,
		Advisories: imp.Advisories, Skipped: imp.Skipped, NewestModified: imp.NewestModified,
		Ecosystems: make([]api.VulnDBEcosystem, len(imp.Ecosystems))}
	for i, e := range imp.Ecosystems {
		out.Ecosystems[i] = api.VulnDBEcosystem{Ecosystem: e.Ecosystem, Advisories: e.Advisories, Packages: e.Packages, NewestModified: e.NewestModified}
	}
	return out
}

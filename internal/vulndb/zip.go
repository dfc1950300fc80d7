package vulndb

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Limits bound what an import reads from an OSV export. The zero value
// of each field means its default.
type Limits struct {
	// MaxEntries is the most files the zip may hold (counted from its
	// central directory before anything is read). Default 1,000,000 (the
	// Debian export holds some 55,000).
	MaxEntries int
	// MaxEntryBytes is the most one advisory file may hold, uncompressed,
	// counted while it is read (not taken from its header). Default 16 MiB.
	MaxEntryBytes int64
	// MaxTotalBytes is the most all files may hold together,
	// uncompressed, counted while read. Default 8 GiB.
	MaxTotalBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = 1_000_000
	}
	if l.MaxEntryBytes <= 0 {
		l.MaxEntryBytes = 16 << 20
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = 8 << 30
	}
	return l
}

// EntryError says which file of an export was refused, and why.
type EntryError struct {
	Entry string // the file's name in the zip, as it is there
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("%s: %v", quoteName(e.Entry), e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// Is makes every EntryError an ErrRefused.
func (e *EntryError) Is(target error) bool { return target == ErrRefused }

// ErrRefused marks an export refused for what it holds (not for a
// failure of the store or a canceled request): an *EntryError, a zip
// beyond the Limits, a file that is not an OSV export.
var ErrRefused = errors.New("OSV export refused")

// refusal is an error of the export itself: errors.Is(err, ErrRefused).
type refusal struct{ error }

func (r refusal) Is(target error) bool { return target == ErrRefused }
func (r refusal) Unwrap() error        { return r.error }

func refuse(format string, a ...any) error { return refusal{fmt.Errorf(format, a...)} }

// quoteName shows an entry name safely in an error: quoted, cut at 200
// bytes.
func quoteName(name string) string {
	if len(name) > 200 {
		return fmt.Sprintf("%q…", name[:200])
	}
	return fmt.Sprintf("%q", name)
}

// ErrNotOSVExport is returned for a file that is not a zip of OSV
// records.
var ErrNotOSVExport = errors.New("not an OSV export (want the zip of JSON records OSV publishes per ecosystem, such as all.zip)")

// readExport reads the zip of OSV records in r (size bytes), parses each
// *.json file and calls fn with it, in the zip's order; other files are
// passed over. It stops at the first error: a zip beyond lim, a file that
// is not an OSV record (an *EntryError naming it), or fn's.
func readExport(ctx context.Context, r io.ReaderAt, size int64, lim Limits, fn func(entry string, p parsed) error) error {
	lim = lim.withDefaults()
	n, err := countEntries(r, size)
	if err != nil {
		return err
	}
	if n > uint64(lim.MaxEntries) {
		return refuse("the zip holds %d files, more than the %d allowed (an OSV export per ecosystem holds far fewer)", n, lim.MaxEntries)
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return refuse("%w: %v", ErrNotOSVExport, err)
	}
	if len(zr.File) > lim.MaxEntries {
		return refuse("the zip holds %d files, more than the %d allowed", len(zr.File), lim.MaxEntries)
	}
	var total int64
	buf := new(bytes.Buffer)
	records := 0
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.FileInfo().IsDir() || !strings.EqualFold(path.Ext(f.Name), ".json") {
			continue
		}
		if f.UncompressedSize64 > uint64(lim.MaxEntryBytes) {
			return &EntryError{f.Name, fmt.Errorf("%d bytes uncompressed, more than the %d allowed for one advisory", f.UncompressedSize64, lim.MaxEntryBytes)}
		}
		rc, err := f.Open()
		if err != nil {
			return &EntryError{f.Name, err}
		}
		buf.Reset()
		// Count what is inflated, not what the header claims: read at
		// most one byte past the limit.
		nr, err := io.Copy(buf, io.LimitReader(rc, lim.MaxEntryBytes+1))
		rc.Close()
		total += nr
		switch {
		case nr > lim.MaxEntryBytes:
			return &EntryError{f.Name, fmt.Errorf("inflates to more than the %d bytes allowed for one advisory", lim.MaxEntryBytes)}
		case total > lim.MaxTotalBytes:
			return &EntryError{f.Name, fmt.Errorf("the files inflate to more than the %d bytes allowed in all", lim.MaxTotalBytes)}
		case errors.Is(err, zip.ErrFormat):
			// archive/zip stops a file that inflates past its header's size.
			return &EntryError{f.Name, fmt.Errorf("inflates to more than its header says, or fails its checksum (a zip bomb, or a damaged file): %w", err)}
		case err != nil:
			return &EntryError{f.Name, err}
		}
		p, err := parseEntry(buf.Bytes())
		if err != nil {
			return &EntryError{f.Name, err}
		}
		records++
		if err := fn(f.Name, p); err != nil {
			if errors.Is(err, ErrRefused) {
				return &EntryError{f.Name, err}
			}
			return fmt.Errorf("storing %s: %w", quoteName(f.Name), err)
		}
	}
	if records == 0 {
		return refuse("%w: the zip holds no .json file", ErrNotOSVExport)
	}
	return nil
}

// countEntries returns how many files the zip's central directory says it
// holds, read from the end-of-central-directory record (and its zip64
// form), before archive/zip allocates one header per file.
func countEntries(r io.ReaderAt, size int64) (uint64, error) {
	const eocdLen, maxComment = 22, 65535
	tail := min(size, eocdLen+maxComment)
	if tail < eocdLen {
		return 0, refuse("%w: %d bytes is too short for a zip", ErrNotOSVExport, size)
	}
	b := make([]byte, tail)
	if _, err := r.ReadAt(b, size-tail); err != nil && err != io.EOF {
		return 0, fmt.Errorf("reading the zip's directory: %w", err)
	}
	i := bytes.LastIndex(b[:len(b)-eocdLen+4], []byte("PK\x05\x06"))
	if i < 0 {
		return 0, refuse("%w: no zip directory at its end", ErrNotOSVExport)
	}
	n := uint64(binary.LittleEndian.Uint16(b[i+10:]))
	if n != 0xFFFF {
		return n, nil
	}
	// zip64: the locator sits just before the record and points at the
	// zip64 end-of-central-directory record.
	locAt := size - tail + int64(i) - 20
	if locAt < 0 {
		return 0, refuse("%w: a zip64 directory without its locator", ErrNotOSVExport)
	}
	loc := make([]byte, 20)
	if _, err := r.ReadAt(loc, locAt); err != nil || !bytes.HasPrefix(loc, []byte("PK\x06\x07")) {
		return 0, refuse("%w: a zip64 directory without its locator", ErrNotOSVExport)
	}
	at := binary.LittleEndian.Uint64(loc[8:])
	rec := make([]byte, 56)
	if at > uint64(size) || int64(at) > size-56 {
		return 0, refuse("%w: the zip64 directory is outside the file", ErrNotOSVExport)
	}
	if _, err := r.ReadAt(rec, int64(at)); err != nil || !bytes.HasPrefix(rec, []byte("PK\x06\x06")) {
		return 0, refuse("%w: no zip64 directory where its locator points", ErrNotOSVExport)
	}
	return binary.LittleEndian.Uint64(rec[32:]), nil
}

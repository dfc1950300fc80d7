// Package httpbody reads an untrusted HTTP request body within a size
// bound. Both webhook receivers (registry and git) use it, so a body
// that is too large is refused the same way everywhere: 413, before a
// byte is read when Content-Length says so, else once the bound is
// passed.
package httpbody

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Read reads r's body, at most max bytes. On failure it returns the
// HTTP status to answer — 413 for a body over max, 400 for a body that
// could not be read — and an error whose text may be sent to the client
// (it names the bound, never the body).
func Read(w http.ResponseWriter, r *http.Request, max int64) ([]byte, int, error) {
	if r.ContentLength > max {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body exceeds %d bytes", max)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body exceeds %d bytes", max)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading body: %w", err)
	}
	return body, 0, nil
}

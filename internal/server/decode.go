package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// decodeBody runs decode on the request body, bounded to limit bytes. A
// larger body is a 413 that names the limit; any other decoding error is
// a 400. what names the body in errors ("task", "subscription").
//
// Every JSON body the API reads goes through here (or decodeJSON), so
// every endpoint answers an oversized or malformed body alike.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, what string, decode func(io.Reader) error) error {
	err := decode(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		return nil
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("%s: the request body is larger than the %s allowed", what, byteSize(limit))}
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("decoding %s: the request body is empty (want a JSON object)", what)
	}
	return &invalidError{err}
}

// decodeJSON decodes the request body into v strictly: at most limit
// bytes, no unknown fields, nothing after the value (see decodeBody).
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, what string, v any) error {
	return decodeBody(w, r, limit, what, func(rd io.Reader) error {
		dec := json.NewDecoder(rd)
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			if err == io.EOF {
				return err
			}
			return fmt.Errorf("decoding %s: %w", what, err)
		}
		_, err := dec.Token()
		var se *json.SyntaxError
		switch {
		case err == io.EOF:
			return nil
		case err == nil || errors.As(err, &se):
			return fmt.Errorf("decoding %s: unexpected data after the %s", what, what)
		}
		return fmt.Errorf("decoding %s: %w", what, err)
	})
}

// byteSize says n bytes the way a person reads it: "1 MiB", "64 KiB".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

package httpbody_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/refit-dev/refit/internal/httpbody"
)

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       string
		length     int64 // Content-Length; -1 = unknown (chunked)
		wantStatus int
	}{
		{"within the bound", "0123456789", 10, 0},
		{"declared too long", "0123456789a", 11, http.StatusRequestEntityTooLarge},
		{"chunked, too long", "0123456789a", -1, http.StatusRequestEntityTooLarge},
		{"chunked, within", "0123", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(strings.NewReader(tc.body)))
			r.ContentLength = tc.length
			body, status, err := httpbody.Read(httptest.NewRecorder(), r, 10)
			if status != tc.wantStatus {
				t.Fatalf("status %d (%v), want %d", status, err, tc.wantStatus)
			}
			if tc.wantStatus == 0 && string(body) != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if tc.wantStatus == http.StatusRequestEntityTooLarge && (err == nil || !strings.Contains(err.Error(), "10 bytes") || strings.Contains(err.Error(), tc.body)) {
				t.Errorf("error %v: want it to name the bound and not echo the body", err)
			}
		})
	}
}

package server

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/refit-dev/refit/internal/api"
	"github.com/refit-dev/refit/internal/audit"
	"github.com/refit-dev/refit/internal/store"
)

func apiAuditEntry(e audit.Entry) api.AuditEntry {
	return api.AuditEntry{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action, Subject: e.Subject,
		Details: e.Details, PrevHash: e.PrevHash, Hash: e.Hash}
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.AuditFilter{Subject: q.Get("subject"), Actor: q.Get("actor"), Action: q.Get("action")}
	if a := q.Get("after"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil || n < 0 {
			return &httpError{http.StatusBadRequest, fmt.Sprintf("after %q must be a seq (a number, 0 or more)", a)}
		}
		f.After = n
	}
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v, time.Now())
		if err != nil {
			return &invalidError{err}
		}
		f.Since = t
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return &httpError{http.StatusBadRequest, fmt.Sprintf("limit %q must be a number from 1 to 1000", l)}
		}
		f.Limit = n
	}
	es, err := s.cfg.Store.AuditEntries(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiList(es, apiAuditEntry))
}

// verifyAudit recomputes the chain from entry 1 and names the first
// broken entry.
func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	var v audit.Verifier
	err := s.cfg.Store.EachAuditEntry(r.Context(), v.Add)
	var be *audit.BreakError
	if err != nil && !errors.As(err, &be) {
		return err
	}
	head := v.Head()
	out := api.AuditVerification{OK: be == nil, Entries: v.Count(), HeadSeq: head.Seq, HeadHash: head.Hash}
	if be != nil {
		out.Broken = &api.AuditBreak{Seq: be.Seq, Reason: be.Reason}
	}
	if s.cfg.AuditKey != nil {
		out.PublicKey = audit.PublicKeyString(s.cfg.AuditKey.Public().(ed25519.PublicKey))
	}
	return writeJSON(w, http.StatusOK, out)
}

// exportAudit streams every entry as JSON Lines, verifying the chain as
// it goes, and closes with a checkpoint of the last entry signed with
// the server's key. A broken chain is never signed: the stream ends with
// {"error":"audit log broken at entry N: …"} instead, which no verifier
// accepts.
func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.AuditKey == nil {
		return &httpError{http.StatusNotImplemented, "audit export needs the server's signing key, which this server was not given"}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	var v audit.Verifier
	err := s.cfg.Store.EachAuditEntry(r.Context(), func(e audit.Entry) error {
		if err := v.Add(e); err != nil {
			return err
		}
		return enc.Encode(audit.Line{Entry: e})
	})
	if err != nil {
		s.cfg.Logger.Error("audit export", "err", err)
		enc.Encode(api.Error{Message: err.Error()})
		return nil // the status is sent
	}
	head := v.Head()
	cp := audit.Sign(s.cfg.AuditKey, head.Seq, head.Hash, time.Now())
	enc.Encode(audit.Line{Checkpoint: &cp})
	return nil
}

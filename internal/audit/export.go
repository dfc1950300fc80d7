package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxLine bounds one line of an export file: an entry holds at most a
// task's old and new spec (1 MiB each), with room to spare.
const MaxLine = 8 << 20

// Line is one line of an export (JSON Lines): an entry, or, last, the
// checkpoint as {"checkpoint":{…}}.
type Line struct {
	Entry
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// MarshalJSON writes an entry line as the entry alone and a checkpoint
// line as {"checkpoint":…}.
func (l Line) MarshalJSON() ([]byte, error) {
	if l.Checkpoint != nil {
		return json.Marshal(struct {
			Checkpoint *Checkpoint `json:"checkpoint"`
		}{l.Checkpoint})
	}
	return json.Marshal(l.Entry)
}

// FileResult is what ReadExport found in a valid file.
type FileResult struct {
	Entries    int64      // how many, numbered 1 to Entries
	Head       Entry      // the last one
	Checkpoint Checkpoint // the signed checkpoint that closes the file
}

// ReadExport verifies an export file: every entry in order from 1, each
// hashing its predecessor, then one checkpoint, signed, naming the last
// entry. With trusted set, the checkpoint must be signed by that key.
// Lines longer than maxLine (0 = MaxLine) are refused. A broken chain is
// a *BreakError; anything else wrong is an error naming the line.
func ReadExport(r io.Reader, trusted ed25519.PublicKey, maxLine int) (FileResult, error) {
	if maxLine <= 0 {
		maxLine = MaxLine
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(maxLine, 64<<10)), maxLine)
	var v Verifier
	var cp *Checkpoint
	n := 0
	for sc.Scan() {
		n++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if cp != nil {
			return FileResult{}, fmt.Errorf("line %d: nothing may follow the checkpoint (line %d)", n, n-1)
		}
		var l Line
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return FileResult{}, fmt.Errorf("line %d: not an audit entry or checkpoint: %w", n, err)
		}
		if dec.More() {
			return FileResult{}, fmt.Errorf("line %d: more than one JSON value", n)
		}
		if l.Checkpoint != nil {
			if l.Entry.Seq != 0 || l.Entry.Hash != "" {
				return FileResult{}, fmt.Errorf("line %d: a checkpoint line holds an entry too", n)
			}
			cp = l.Checkpoint
			continue
		}
		if err := v.Add(l.Entry); err != nil {
			return FileResult{}, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return FileResult{}, fmt.Errorf("line %d: longer than %d bytes", n+1, maxLine)
		}
		return FileResult{}, fmt.Errorf("reading line %d: %w", n+1, err)
	}
	if cp == nil {
		return FileResult{}, errors.New("no checkpoint: the file was cut short, or is not a refit audit export")
	}
	if err := cp.VerifySignature(trusted); err != nil {
		return FileResult{}, err
	}
	head := v.Head()
	if cp.Seq != head.Seq || cp.Hash != head.Hash {
		if cp.Seq > head.Seq {
			return FileResult{}, &BreakError{head.Seq + 1, fmt.Sprintf("missing: the signed checkpoint names entry %d as the last", cp.Seq)}
		}
		return FileResult{}, fmt.Errorf("the signed checkpoint names entry %d (%.12s…) as the last, the file ends with entry %d (%.12s…)", cp.Seq, cp.Hash, head.Seq, head.Hash)
	}
	return FileResult{Entries: v.Count(), Head: head, Checkpoint: *cp}, nil
}

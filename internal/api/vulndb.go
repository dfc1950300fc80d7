package api

import "time"

// VulnDBStatus is GET /api/v1/vulndb and the answer to an import (POST
// /api/v1/vulndb): what the offline vulnerability database holds.
type VulnDBStatus struct {
	// Imported is false until an OSV export was imported; every other
	// field is then empty.
	Imported   bool      `json:"imported"`
	ImportedAt time.Time `json:"importedAt,omitzero"`
	// SHA256 and Size identify the imported file.
	SHA256     string `json:"sha256,omitempty"`
	Size       int64  `json:"size,omitempty"`
	Advisories int    `json:"advisories"`
	// Skipped counts what was not imported: withdrawn advisories, and
	// packages of ecosystems refit cannot compare versions of.
	Skipped int `json:"skipped"`
	// NewestModified is the newest advisory's modified time: how fresh
	// the data was when it was exported.
	NewestModified time.Time         `json:"newestModified,omitzero"`
	Ecosystems     []VulnDBEcosystem `json:"ecosystems"`
}

// VulnDBEcosystem is one OSV ecosystem's share of the database.
type VulnDBEcosystem struct {
	Ecosystem      string    `json:"ecosystem"` // "Debian:12", "Alpine:v3.19"
	Advisories     int       `json:"advisories"`
	Packages       int       `json:"packages"`
	NewestModified time.Time `json:"newestModified,omitzero"`
}

package api

import "time"

// Watch is a reference watched without building: each entry of GET
// /api/v1/watches and the answer to POST /api/v1/watches. Its digest is
// polled like a base (when ByDigest) and a move emits base.updated; with
// Semver, new tags of its repository matching it emit base.tagged. No run
// is ever queued for a watch.
type Watch struct {
	Ref        string    `json:"ref"`        // normalized ("docker.io/library/python:3.12"), or the repository alone when !ByDigest
	Repository string    `json:"repository"` // Ref without tag
	ByDigest   bool      `json:"byDigest"`   // Ref names a tag whose digest is watched
	Semver     string    `json:"semver,omitempty"`
	Prerelease bool      `json:"prerelease,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
}

// WatchRequest is the body of POST /api/v1/watches and each entry of an
// apply's watches: a reference as Docker reads it ("python:3.12"; a
// repository without tag watches only its tags, and then needs Semver),
// and an optional semver range its repository's new tags are held to.
type WatchRequest struct {
	Ref        string `json:"ref"`
	Semver     string `json:"semver,omitempty"`
	Prerelease bool   `json:"prerelease,omitempty"`
}

// WatchResult answers POST /api/v1/watches (201 when created, else 200).
type WatchResult struct {
	Watch   Watch `json:"watch"`
	Created bool  `json:"created"`
}

package api

import "time"

// GitSecretRequest is the body of PUT /api/v1/git/secrets: the webhook
// secret of a repository, which git hosts use to sign (GitHub, Gitea,
// generic) or present (GitLab) their push notifications.
type GitSecretRequest struct {
	Repo   string `json:"repo"`   // any URL form of the repository (https, ssh, .git)
	Secret string `json:"secret"` // stored encrypted, never returned
}

// GitSecret is a repository with a webhook secret, without the secret.
type GitSecret struct {
	RepoKey   string    `json:"repoKey"` // how refit matches the repository: host/path
	Repo      string    `json:"repo"`    // the URL as set
	UpdatedAt time.Time `json:"updatedAt"`
}

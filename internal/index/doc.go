// Package index owns what refit knows about base image references:
// tracking the references the tasks use and watching them for changes
// (Watcher) — what to check when, how to spread checks over the
// interval, backing off references and a failing store — and hints from
// pushes and webhooks (Watcher.Hint). It asks the registry client
// (internal/regclient) what a reference points to, and hands each
// successful check on as one Observation to an Observer it declares
// (internal/lifecycle commits it with the runs it causes). It also lists
// the tags of followed repositories (triggers.baseTags, watches with a
// semver range) on the same due-time scheme, and hands the newest
// matching tags to a TagObserver. It does not build or plan.
package index

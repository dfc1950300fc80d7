//go:build !linux

package catalog

// limitMemory does nothing where RLIMIT_DATA is not known: the child's
// memory is then bounded by the time budget only.
func limitMemory(int64) {}

// closeInherited does nothing off Linux.
func closeInherited() {}

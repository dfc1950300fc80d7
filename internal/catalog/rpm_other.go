//go:build !linux

package catalog

import "syscall"

// limitMemory does nothing where RLIMIT_DATA is not known: the child's
// memory is then bounded by the time budget only.
func limitMemory(int64) {}

// childAttr sets nothing off Linux.
func childAttr() *syscall.SysProcAttr { return nil }

// closeInherited does nothing off Linux.
func closeInherited() {}

package catalog

import "syscall"

// limitMemory caps this process's data segment (RLIMIT_DATA, which
// counts the Go heap): past it an allocation fails and the process ends.
func limitMemory(n int64) {
	_ = syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: uint64(n), Max: uint64(n)})
}

package catalog

import (
	"os"
	"strconv"
	"syscall"
)

// childAttr makes the child parser die with refit: killed (SIGKILL)
// when the thread that started it ends, so a parser stuck in a loop does
// not outlive a refit serve that was killed itself.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// limitMemory caps this process's data segment (RLIMIT_DATA, which
// counts the Go heap): past it an allocation fails and the process ends.
func limitMemory(n int64) {
	_ = syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: uint64(n), Max: uint64(n)})
}

// closeInherited closes the descriptors above stderr this process
// inherited without close-on-exec from its parent (refit serve's own
// inheritance: a supervisor's pipes, a test runner's): the child parser
// needs none of them. The Go runtime opens its own with O_CLOEXEC, so
// they are told apart by that flag.
func closeInherited() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		if errno == 0 && flags&syscall.FD_CLOEXEC == 0 {
			syscall.Close(fd)
		}
	}
}

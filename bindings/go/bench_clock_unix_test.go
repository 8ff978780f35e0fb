//go:build unix

package koru_test

import (
	"syscall"
	"time"
)

// now reads the wall clock and this process's CPU time (user and system).
func now() clock {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return clock{time.Now(), time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
}

//go:build !unix

package koru_test

import "time"

// now reads the wall clock; the client's CPU share is reported as 0 where getrusage is missing.
func now() clock { return clock{wall: time.Now()} }

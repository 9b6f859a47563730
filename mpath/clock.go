package mpath

import "github.com/mpathfs/mpathfs/clock"

// Clock is the source of time and timers (package clock). The default is the
// system clock; tests inject a fake (mpathtest.Clock) so delayed removal and retry
// delays run without sleeping.
type Clock = clock.Clock

// Timer is a pending AfterFunc call.
type Timer = clock.Timer

// SystemClock returns the Clock backed by package time.
func SystemClock() Clock { return clock.System() }

package host

import "github.com/mpathfs/mpathfs/clock"

// Clock is the source of time for keep-alive, reconnect, fast_io_fail, ANATT
// and register polling (package clock), injectable so tests drive timers on
// fake time (mpath/mpathtest.Clock).
type Clock = clock.Clock

// Timer is a pending AfterFunc call.
type Timer = clock.Timer

package host

import (
	"fmt"
)

// State is the controller state, with the kernel's names
// (nvme_ctrl_state_names, sysfs "state").
type State uint32

// Controller states. The numbering follows enum nvme_ctrl_state.
const (
	StateNew State = iota
	StateLive
	StateResetting
	StateConnecting
	StateDeleting
	StateDeletingNoIO
	StateDead
	numStates
)

var stateNames = [numStates]string{
	StateNew:          "new",
	StateLive:         "live",
	StateResetting:    "resetting",
	StateConnecting:   "connecting",
	StateDeleting:     "deleting",
	StateDeletingNoIO: "deleting (no IO)",
	StateDead:         "dead",
}

// String returns the sysfs name of s; unknown values print as
// "unknown state" like the kernel.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "unknown state"
}

// allowed is the transition table of nvme_change_ctrl_state (Linux 6.x,
// after NEW->LIVE and RESETTING->LIVE were removed): allowed[to] lists the
// states a controller may enter `to` from. Everything else is refused.
//
//   - live:             from connecting (the end of every (re)connect)
//   - resetting:        from new, live (error recovery, Reset)
//   - connecting:       from new (first connect), resetting
//   - deleting:         from live, resetting, connecting (Close, ctrl_loss_tmo)
//   - deleting (no IO): from deleting, dead (Close)
//   - dead:             from deleting (reconnect given up)
var allowed = [numStates][]State{
	StateLive:         {StateConnecting},
	StateResetting:    {StateNew, StateLive},
	StateConnecting:   {StateNew, StateResetting},
	StateDeleting:     {StateLive, StateResetting, StateConnecting},
	StateDeletingNoIO: {StateDeleting, StateDead},
	StateDead:         {StateDeleting},
}

// CanTransition reports whether the state machine allows from -> to.
func CanTransition(from, to State) bool {
	if to >= numStates {
		return false
	}
	for _, s := range allowed[to] {
		if s == from {
			return true
		}
	}
	return false
}

// changeState is the only place the controller state changes
// (nvme_change_ctrl_state). Under c.mu it checks the transition table and,
// if a is not nil, that a is still the current association (so a late
// failure of a torn-down association cannot reset its successor). On
// success it records the new state, runs the transition's side effects
// (fast_io_fail timer, failfast flag, waking waiters), logs "old -> new"
// and queues a StateChanged event. It returns false, changing nothing, if
// the transition is not allowed.
func (c *Controller) changeState(to State, a *assoc, cause error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	from := c.state
	if !CanTransition(from, to) || (a != nil && c.assoc != a) {
		return false
	}
	c.state = to
	c.stateA.Store(uint32(to))
	c.stateChanges.Add(1)
	if to == StateResetting {
		c.resets.Add(1)
	}
	switch {
	case to == StateLive:
		c.stopFailfastLocked()
	case to == StateConnecting && from == StateResetting:
		c.startFailfastLocked()
	case to == StateDeleting || to == StateDead:
		c.stopFailfastLocked()
	}
	if cause != nil {
		c.log.Info(fmt.Sprintf("%s -> %s", from, to), "cause", cause)
	} else {
		c.log.Info(fmt.Sprintf("%s -> %s", from, to))
	}
	c.stateCond.Broadcast()
	c.events.push(Event{Kind: StateChanged, Old: from, New: to, Err: cause})
	return true
}

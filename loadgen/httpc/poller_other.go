//go:build !linux

package httpc

import (
	"errors"
	"time"
)

// PollerSupported reports whether NewPoller works here: Linux only.
const PollerSupported = false

// Poller is Linux's; NewPoller fails elsewhere.
type Poller struct{}

// Exchange is Linux's.
type Exchange struct {
	User any
	Res  Result
}

// PreciseWait is Linux's.
func PreciseWait() bool { return false }

// NewPoller fails off Linux: callers use Client.
func (t *Transport) NewPoller() (*Poller, error) { return nil, errors.ErrUnsupported }

// The methods exist so that callers build everywhere; without a Poller
// they are never called.

func (p *Poller) NewExchange(user any) *Exchange     { return &Exchange{User: user} }
func (p *Poller) Release(x *Exchange)                {}
func (p *Poller) Close()                             {}
func (p *Poller) Now() time.Time                     { return time.Time{} }
func (p *Poller) Start(x *Exchange, r *Request)      {}
func (p *Poller) Wait(max time.Duration) []*Exchange { return nil }

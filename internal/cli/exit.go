package cli

import "errors"

// Code is a process exit code. The numbers are part of loadcap's interface
// (scripts and CI branch on them); they follow k6's where k6 has the same
// case.
type Code int

// Exit codes.
const (
	ExitOK         Code = 0
	ExitToolError  Code = 1   // loadcap itself failed (I/O, an agent, ...)
	ExitUsage      Code = 2   // the command line is wrong
	ExitThresholds Code = 99  // a threshold or SLO failed
	ExitInvalid    Code = 104 // an input file is invalid or missing
	ExitAborted    Code = 105 // stopped early: a signal, the guard
	ExitIsolation  Code = 106 // the isolation pre-flight or the audit found a leak
	ExitRegression Code = 110 // compare found a regression against the baseline
	ExitPartial    Code = 111 // a distributed run lost an agent: the result covers only part of the load
)

// Error is an error with the exit code it stands for.
type Error struct {
	Code Code
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// WithCode attaches an exit code to err. The outermost code wins: ExitCode
// reports the first Error in err's chain.
func WithCode(code Code, err error) error { return &Error{Code: code, Err: err} }

// ErrSilent is the error of an exit code whose reason was already printed:
// WithCode(code, ErrSilent) exits with code and prints nothing more.
var ErrSilent = errors.New("")

// Silent reports whether err carries only an exit code, its reason having
// been printed already.
func Silent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Err == ErrSilent
}

// ExitCode maps an error to the process exit code: 0 for nil, the code
// attached with WithCode, else the code of the first classify that knows
// the error (loadcap's main passes scenarios.Invalid as ExitInvalid; this
// package stays below every other), else ExitToolError.
func ExitCode(err error, classify ...func(error) (Code, bool)) int {
	if err == nil {
		return int(ExitOK)
	}
	var e *Error
	if errors.As(err, &e) {
		return int(e.Code)
	}
	for _, c := range classify {
		if code, ok := c(err); ok {
			return int(code)
		}
	}
	return int(ExitToolError)
}

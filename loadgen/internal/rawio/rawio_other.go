//go:build !unix

package rawio

import "errors"

// Supported is false here: the clients use their connections as they are.
const Supported = false

// Read is not available on this system (Supported is false).
func Read(fd uintptr, p []byte) (int, error) { return -1, errors.ErrUnsupported }

// Write is not available on this system (Supported is false).
func Write(fd uintptr, p []byte) (int, error) { return -1, errors.ErrUnsupported }

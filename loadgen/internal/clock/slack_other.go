//go:build !linux

package clock

// TightenThread does nothing on this platform.
func TightenThread() {}

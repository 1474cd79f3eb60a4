// Package rawio reads and writes non-blocking sockets in raw system calls,
// for the clients' callbacks inside syscall.RawConn's Read and Write.
//
// Such a call cannot block, and telling the scheduler about it (as
// syscall.Read and Write do) costs more than the call on a one-core
// generator: the scheduler's monitor, seeing the processor in a system
// call on two of its 20 µs ticks, hands it to another thread, and the
// threads' wake-ups and sleeps came to about 0.2 futex and 0.2 nanosleep
// calls and half a context switch per request. The race detector does not
// see the kernel's writes into a read buffer.
package rawio

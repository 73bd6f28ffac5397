"""Real-time text, sans-I/O: T.140 text, RFC 2198 redundancy, the RFC 4103 sender and
receiver, and the RFC 8865 data-channel side.

Nothing here owns a socket, a task or a clock: callers pass ``now`` (seconds, any
monotonic origin) and get values back; timers are deadlines the caller sleeps until.
"""

"""gossipmq.transports: the runtimes that drive the sans-I/O kernel (ZeroMQ, in-memory)."""

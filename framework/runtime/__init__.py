"""The consumer runtime: fetch loop, buffers, worker pool, offsets, flow control."""

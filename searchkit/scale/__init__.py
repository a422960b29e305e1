"""Beyond one process: Ray clusters on loopback, a sharded index, embedding across workers."""

"""Measuring and showing: timers and sweeps, load tests, the one table formatter, one helper per figure."""

"""Online experiments: arms, assignment, the event store of impressions and clicks, simulated users."""

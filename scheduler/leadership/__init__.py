"""Leadership: the lease, change notices, the leader's chores, and one replica's run loop."""

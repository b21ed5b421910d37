"""sundial's scheduler: leader lease, SQL job store, triggers, dispatch and the run loop."""

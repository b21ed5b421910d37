"""One module per scenario: S1 burst, S2 sustained, S3 scale, S4 API, S5 wake-up/failover."""

"""A Cablecast simulator (a subset of CablecastAPI v1) and the client the testbed uses."""

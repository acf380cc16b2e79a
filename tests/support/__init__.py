"""Helpers shared by the test suite: real server processes, real protocol clients."""

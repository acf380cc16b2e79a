"""Example schemas shipped with gqlchannels."""

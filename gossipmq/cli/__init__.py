"""`gossipctl`, the command-line face of gossipmq (a thin shell over `gossipmq.Agent`)."""
from .app import app, main

__all__ = ["app", "main"]

"""The `agentrag` command line (typer). Heavy libraries are imported inside commands."""

from agentrag.cli.app import app, main

__all__ = ["app", "main"]

"""releaser: deploy and publish on a fixed calendar, with live / backup / staging slots on every server."""

__version__ = "0.1.0"

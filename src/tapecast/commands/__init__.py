"""Command implementations of the ``tapecast`` CLI, one module per command family.

``tapecast.cli`` owns the Typer app and registers these functions on it; shared console and
error handling live in :mod:`tapecast.commands.common`.
"""

"""The one error a model source raises: it names the URI, so a failed rollout says which."""

from __future__ import annotations


class ModelSourceError(RuntimeError):
    """A model could not be resolved, fetched, verified or laid out as the app needs."""

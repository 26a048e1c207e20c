"""Paths that may be local or in an object store (gs://bucket/...)."""


def is_remote(path) -> bool:
    """True for object-store paths such as gs://bucket/run."""
    return "://" in str(path)

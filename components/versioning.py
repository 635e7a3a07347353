"""Digests of this package's source, so that cached results follow code changes.

The Trainer and the ExampleGen run code referred to by module path; TFX's cache
knows only their parameters. Passing a digest of the code they run as a
parameter makes an edit of that code re-run them instead of reusing old output.
"""

import hashlib
import inspect
from types import ModuleType


def source_digest(*modules: ModuleType) -> str:
    """A short SHA-256 over the source files of the given modules."""
    digest = hashlib.sha256()
    for module in sorted(modules, key=lambda item: item.__name__):
        digest.update(module.__name__.encode() + b"\0")
        with open(inspect.getsourcefile(module), "rb") as stream:
            digest.update(stream.read())
    return digest.hexdigest()[:16]

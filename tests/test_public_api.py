"""The package's public surface is exactly what ``__all__`` says."""

from __future__ import annotations

import quote2cash


def test_public_names_are_exactly_all() -> None:
    public = {name for name in dir(quote2cash) if not name.startswith("_")} - {
        # sub-packages become attributes once imported
        "api",
        "cli",
        "config",
        "connectors",
        "errors",
        "flows",
        "mappings",
        "model",
        "ops",
        "ports",
        "registry",
        "rules",
        "runtime",
        "sandbox",
        "store",
    }
    assert public == set(quote2cash.__all__) - {"__version__"}
    for name in quote2cash.__all__:
        assert getattr(quote2cash, name) is not None

"""The package's top level: what ``import sfemg`` offers."""

import sfemg

#: Subpackages and modules that importing the top level loads (importable on their own).
_LOADED = {"analysis", "errors", "io", "recording", "synthesis"}


def test_the_top_level_offers_its_public_api_and_nothing_borrowed():
    """Every public name is in ``__all__`` or a subpackage; ``importlib.metadata``'s
    ``version`` and ``PackageNotFoundError`` showed up as ``sfemg.version`` (a function
    that looks up any package) until this test."""
    public = {name for name in dir(sfemg) if not name.startswith("_")}
    assert public - _LOADED <= set(sfemg.__all__), public - _LOADED - set(sfemg.__all__)
    assert all(getattr(sfemg, name) is not None for name in sfemg.__all__)  # (plots load on first use)
    assert sfemg.analyze is sfemg.analyze_file and isinstance(sfemg.__version__, str)

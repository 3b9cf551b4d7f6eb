"""The package's top level: what ``import sfemg`` offers."""

import types

import sfemg


def test_the_top_level_offers_its_public_api_and_nothing_borrowed():
    """Every public name is in ``__all__`` or one of the package's own modules (loaded on
    import or since); ``importlib.metadata``'s ``version`` and ``PackageNotFoundError``
    showed up as ``sfemg.version`` (a function that looks up any package) until this test."""
    own_modules = {name for name in dir(sfemg) if isinstance(getattr(sfemg, name), types.ModuleType)
                   and getattr(sfemg, name).__name__ == f"sfemg.{name}"}
    public = {name for name in dir(sfemg) if not name.startswith("_")}
    assert public - own_modules <= set(sfemg.__all__), public - own_modules - set(sfemg.__all__)
    assert all(getattr(sfemg, name) is not None for name in sfemg.__all__)  # (plots load on first use)
    assert sfemg.analyze is sfemg.analyze_file and isinstance(sfemg.__version__, str)

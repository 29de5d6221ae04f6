"""Shared pytest fixtures. Add fixtures here; do not remove others' (several modules share it)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).resolve().parent
BAD_CORPUS = TESTS / "data" / "bad"


def _load_corpus_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_bad_corpus", TESTS / "data" / "make_bad_corpus.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def corpus() -> ModuleType:
    """tests/data/make_bad_corpus.py as a module: ``good_tables()``, ``write_folder()``, cases."""
    return _load_corpus_module()


@pytest.fixture(scope="session")
def bad_corpus() -> Path:
    """Folder of the committed bad-input corpus: one sub-folder per case (tests/data/bad)."""
    return BAD_CORPUS


@pytest.fixture()
def good_tables(corpus: ModuleType) -> dict[str, list[list[str]]]:
    """A fresh copy of the valid corpus dataset (table -> header + rows), safe to mutate."""
    return corpus.good_tables()


@pytest.fixture()
def pretend_pyspark(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    """Make ``importlib.util.find_spec("pyspark")`` say pyspark is (not) installed, whatever
    this environment has, so the engine checks can be tested with and without the extra."""
    import importlib.util

    real = importlib.util.find_spec

    def pretend(installed: bool) -> None:
        def find_spec(name: str, *args: object) -> object:
            if name == "pyspark":
                return object() if installed else None
            return real(name, *args)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    return pretend


# The slowest test files, started first: `make test` spreads whole files over 2 workers
# (pytest-xdist, --dist loadfile), so a long file collected last would finish alone at the end.
SLOW_FIRST = ("test_spark.py", "test_report_end_to_end.py", "test_schema.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within each file is kept

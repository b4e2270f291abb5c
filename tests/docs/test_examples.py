"""Every example of docs/guide.md runs (against the real broker when it takes one), so
none can rot."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

import pytest

from event_spine.schemas import StoredEvent

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLES = sorted(p for p in (DOCS / "examples").glob("*.py") if not p.name.startswith("_"))


def load(path: Path) -> ModuleType:
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # as when run as a script: its helper imports
    spec = importlib.util.spec_from_file_location(f"docs_example_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_guide_includes_every_example() -> None:
    guide = (DOCS / "guide.md").read_text()
    assert len(EXAMPLES) >= 7
    for path in EXAMPLES:
        assert f"docs/examples/{path.name}" in guide, f"{path.name} is not in the guide"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
async def test_example_runs(request: pytest.FixtureRequest, tmp_path: Path, path: Path) -> None:
    main = load(path).main
    if "bootstrap_servers" in inspect.signature(main).parameters:
        broker = request.getfixturevalue("broker")
        result = await main(broker.bootstrap_servers, tmp_path)
    else:  # the testing kit's examples need no broker
        result = await main(tmp_path)
    assert result, f"{path.name} returned nothing"
    assert all(isinstance(event, StoredEvent) for event in result)
    assert len({event.event_id for event in result}) == len(result)

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from crops_sdk import Kind
from crops_sdk.testkit import PluginProcess

#: How tests start the SDK's test plugins: the way a user's plugin runs.
TESTPLUGINS = [sys.executable, "-m", "crops_sdk.testplugins"]


@pytest.fixture
def start() -> Iterator[type[PluginProcess]]:
    procs: list[PluginProcess] = []

    class Tracked(PluginProcess):
        def __init__(self, kind: Kind, name: str, **kw: object) -> None:
            super().__init__(TESTPLUGINS, kind, name, **kw)  # type: ignore[arg-type]
            procs.append(self)

    yield Tracked
    for p in procs:
        p.close()

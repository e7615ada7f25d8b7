"""Fixtures for the JavaScript <-> Python interop tests. No Django and no database are needed."""

from collections.abc import Iterator

import pytest

from .peers import DriverProcess, JsPeer, PyPeer


@pytest.fixture(scope="module")
def driver() -> Iterator[DriverProcess]:
    process = DriverProcess()
    yield process
    process.close()


@pytest.fixture
def make_peer(driver: DriverProcess, request: pytest.FixtureRequest):
    """make_peer("js" | "py", name) -> a fresh client with 10 one-time prekeys."""
    created: list[PyPeer] = []
    counter = iter(range(1_000_000))

    def make(language: str, name: str) -> JsPeer | PyPeer:
        unique = f"{request.node.name}-{name}-{next(counter)}"
        if language == "js":
            return JsPeer(driver, unique)
        peer = PyPeer(unique)
        created.append(peer)
        return peer

    yield make
    for peer in created:
        peer.close()

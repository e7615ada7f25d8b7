"""Helpers shared by the realtime tests."""

import asyncio
import time


async def until(condition, what: str, seconds: float = 10) -> None:
    """Poll the async `condition` until it holds; fail after `seconds` (a deadline, not a
    wait: the test goes on as soon as the condition holds)."""
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)

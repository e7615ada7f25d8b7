"""Python client <-> browser client: the browser tests' server, Chromium and people, reused as they are.

Kept in their own package: the package-scoped Chromium (Playwright's sync API holds an event loop in
the main thread) closes at the end of it, before any later test runs a loop of its own."""

from tests.browser.conftest import (  # noqa: F401 - fixtures and the skip rule (SQLite pass only)
    browser,
    messenger_server,
    people,
    pytest_collection_modifyitems,
)

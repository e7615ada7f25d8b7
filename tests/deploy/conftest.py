"""The production topology (docs/DEPLOY.md) end to end: Debian's nginx with TLS in front of two
daphne processes on MariaDB + Redis, driven over https/wss.

Runs in the MariaDB + Redis pass. Needs Debian's `nginx` (scripts/setup.sh installs it in dev
mode when run as root) and, for the conversation, `chromium`; without them the tests are
skipped with the reason.
"""

import os
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.deploy.topology import NGINX, make_topology


@pytest.fixture(scope="package")
def topology():
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"{NGINX} is missing (apt-get install nginx; scripts/setup.sh dev installs it as root)")
    topology = make_topology()
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


@pytest.fixture(scope="package")
def browser():
    """Package-scoped for the reason tests/browser/conftest.py gives (Playwright's event loop)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()

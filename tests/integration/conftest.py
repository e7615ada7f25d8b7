import secrets

import pytest

from tests.integration.servers import Cluster, Server, free_port, server_env


@pytest.fixture
def cluster(transactional_db):
    """Two daphne processes sharing the test database and Redis."""
    jwt_key = secrets.token_urlsafe(48)
    env = server_env(jwt_key=jwt_key)
    servers = [Server(port=free_port(), env=env) for _ in range(2)]
    try:
        for server in servers:
            server.start()
        yield Cluster(servers=servers, jwt_key=jwt_key)
    finally:
        for server in servers:
            server.stop()

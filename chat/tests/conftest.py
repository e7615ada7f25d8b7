import pytest
from channels.layers import channel_layers

from chat.tests.helpers import make_contacts
from realtime.ratelimit import local_rate_limits_reset


@pytest.fixture(autouse=True)
def _fresh_channel_layer_and_limits():
    """Each test gets its own channel layer (no group membership or queued push can leak
    from one test into the next) and empty in-process rate-limit buckets."""
    channel_layers.backends = {}
    local_rate_limits_reset()
    yield
    channel_layers.backends = {}
    local_rate_limits_reset()


@pytest.fixture
def alice(make_account):
    return make_account()


@pytest.fixture
def bob(make_account):
    return make_account()


@pytest.fixture
def contacts(alice, bob):
    """alice and bob are accepted contacts."""
    make_contacts(alice, bob)
    return alice, bob

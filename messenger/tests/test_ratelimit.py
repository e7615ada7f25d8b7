"""The one GCRA function both limiters use (accounts.ratelimit, realtime.ratelimit), and the
client address per-address limits count by."""

import pytest
from django.test import RequestFactory

from messenger.errors import RateLimited
from messenger.ratelimit import client_address, emission_interval, gcra_take, parse_limit


def take(spec: str, tat: float, times: list[float]) -> float:
    for now in times:
        tat = gcra_take(spec, tat=tat, now=now)
    return tat


def test_parse_limit_reads_burst_and_period():
    assert parse_limit("5/3600") == (5, 3600.0)
    assert emission_interval("3/30") == 10.0


def test_a_full_bucket_admits_a_burst_then_one_request_per_interval():
    tat = take("3/30", 0.0, [1000.0, 1000.0, 1000.0])
    with pytest.raises(RateLimited) as denied:
        gcra_take("3/30", tat=tat, now=1000.0)
    assert denied.value.retry_after == 10
    tat = gcra_take("3/30", tat=tat, now=1010.0)  # one request refilled
    with pytest.raises(RateLimited):
        gcra_take("3/30", tat=tat, now=1010.0)


def test_a_denied_request_does_not_consume():
    tat = take("1/60", 0.0, [500.0])
    for _ in range(3):
        with pytest.raises(RateLimited):
            gcra_take("1/60", tat=tat, now=530.0)
    assert gcra_take("1/60", tat=tat, now=560.0) == 620.0


def test_a_full_bucket_of_one_admits_its_first_request_whatever_the_clock():
    """At this time `(now + 60) - 60 > now` in floating point."""
    now = 131052.68745359084
    assert (now + 60) - 60 > now
    gcra_take("1/60", tat=now, now=now)
    gcra_take("1/60", tat=0.0, now=now)


def test_the_wait_is_rounded_up_to_whole_seconds():
    tat = take("2/3", 0.0, [10.0, 10.0])
    with pytest.raises(RateLimited) as denied:
        gcra_take("2/3", tat=tat, now=10.2)
    assert denied.value.retry_after == 2  # 1.3 s


@pytest.mark.parametrize(
    ("remote_addr", "subject"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("not an address", "not an address"),
        ("", "unknown"),
    ],
)
def test_client_address_counts_ipv6_per_64(remote_addr, subject):
    assert client_address(RequestFactory().get("/", REMOTE_ADDR=remote_addr)) == subject


def test_no_request_is_the_local_subject():
    assert client_address(None) == "local"

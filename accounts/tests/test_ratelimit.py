"""The token buckets, and registration/refresh throttling (sign-in: test_login_throttle.py)."""

import threading

import pytest
from django.db import connection

from accounts.models import RateLimitBucket
from accounts.ratelimit import (
    rate_limit_hit,
    rate_limit_mark,
    rate_limit_marked,
    rate_limit_purge,
    rate_limit_refund,
    rate_limit_reset,
)
from messenger.errors import RateLimited
from tests.helpers import CsrfClient, registration_payload

pytestmark = pytest.mark.django_db


def test_bucket_allows_a_burst_then_refills_at_the_rate(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_account": "3/30"}
    for _ in range(3):
        rate_limit_hit("login_account", "a@example.test", now=1000.0)
    with pytest.raises(RateLimited) as denied:
        rate_limit_hit("login_account", "a@example.test", now=1000.0)
    assert denied.value.retry_after == 10
    rate_limit_hit("login_account", "a@example.test", now=1010.0)  # one token refilled
    rate_limit_hit("login_account", "b@example.test", now=1000.0)  # other subjects unaffected


def test_a_full_bucket_of_one_admits_its_first_request_whatever_the_clock(settings):
    """At this time `(now + 60) - 60 > now` in floating point: the first request of a "1/60"
    limit must pass all the same."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_account": "1/60"}
    now = 131052.68745359084
    assert (now + 60) - 60 > now
    rate_limit_hit("login_account", "a@example.test", now=now)
    with pytest.raises(RateLimited):
        rate_limit_hit("login_account", "a@example.test", now=now)


def test_buckets_store_no_email_in_clear(settings):
    rate_limit_hit("login_account", "secret@example.test")
    assert "secret" not in RateLimitBucket.objects.get().key


def test_switch_disables_every_limit(settings):
    settings.RATE_LIMITS_ENABLED = False
    for _ in range(50):
        rate_limit_hit("login_account", "a@example.test")
    assert not RateLimitBucket.objects.exists()


def test_purge_drops_only_full_buckets():
    rate_limit_hit("login_ip", "1.2.3.4", now=0.0)
    rate_limit_hit("login_ip", "5.6.7.8", now=10**12)
    assert rate_limit_purge(now=1000.0) == 1


def test_refund_gives_back_one_token_and_reset_refills(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_account": "2/60"}
    rate_limit_hit("login_account", "a", now=1000.0)
    rate_limit_hit("login_account", "a", now=1000.0)
    rate_limit_refund("login_account", "a")
    rate_limit_hit("login_account", "a", now=1000.0)
    with pytest.raises(RateLimited):
        rate_limit_hit("login_account", "a", now=1000.0)
    rate_limit_reset("login_account", "a")
    rate_limit_hit("login_account", "a", now=1000.0)


def test_a_mark_holds_until_it_expires_and_is_purged_then():
    rate_limit_mark("login_known_address", "1.2.3.4\0a@example.test", seconds=60, now=1000.0)
    assert rate_limit_marked("login_known_address", "1.2.3.4\0a@example.test", now=1059.0)
    assert not rate_limit_marked("login_known_address", "1.2.3.4\0b@example.test", now=1059.0)
    assert not rate_limit_marked("login_known_address", "1.2.3.4\0a@example.test", now=1060.0)
    assert "a@example.test" not in RateLimitBucket.objects.get().key
    assert rate_limit_purge(now=1060.0) == 1


def test_registration_is_throttled_per_ip(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "register_ip": "2/3600"}
    client = CsrfClient()
    assert client.post_json("/api/v1/auth/register", registration_payload()).status_code == 201
    assert client.post_json("/api/v1/auth/register", registration_payload()).status_code == 201
    response = client.post_json("/api/v1/auth/register", registration_payload())
    assert response.status_code == 429
    assert "Retry-After" in response


def test_registration_counts_an_ipv6_client_per_64(settings):
    """Addresses of one /64 are one client, as for sign-in (a client changes the low half at will)."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "register_ip": "1/3600"}
    client = CsrfClient()
    assert (
        client.post_json("/api/v1/auth/register", registration_payload(), REMOTE_ADDR="2001:db8::1").status_code == 201
    )
    response = client.post_json("/api/v1/auth/register", registration_payload(), REMOTE_ADDR="2001:db8::2:1")
    assert response.status_code == 429
    other = client.post_json("/api/v1/auth/register", registration_payload(), REMOTE_ADDR="2001:db8:0:1::1")
    assert other.status_code == 201


def test_refresh_is_throttled_per_ip(settings, account):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "refresh_ip": "1/60"}
    assert account.client.post_json("/api/v1/auth/refresh").status_code == 200
    assert account.client.post_json("/api/v1/auth/refresh").status_code == 429


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_concurrent_hits_never_exceed_the_burst(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_account": "5/3600"}
    allowed, denied, barrier = [], [], threading.Barrier(12)

    def hit():
        barrier.wait()
        try:
            rate_limit_hit("login_account", "race@example.test")
            allowed.append(1)
        except RateLimited:
            denied.append(1)
        finally:
            connection.close()

    threads = [threading.Thread(target=hit) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(allowed), len(denied)) == (5, 7)


def test_purge_command_reports_what_it_deleted(capsys):
    from django.core.management import call_command

    rate_limit_hit("login_ip", "1.2.3.4", now=0.0)
    call_command("purge_rate_limits")
    assert "Deleted 1 full rate-limit buckets." in capsys.readouterr().out
    assert not RateLimitBucket.objects.exists()

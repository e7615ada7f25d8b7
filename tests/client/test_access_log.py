"""Who talks to whom stays out of the server's log: daphne writes every request line (method,
path, query string) to its access log, and the server's own log lines carry ids only. The
routes that name a contact take the email in the JSON body."""

from tests.client.helpers import befriend, next_message, registered


async def test_contact_emails_never_reach_the_access_log_or_the_server_log(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)  # contacts/requests, then the answer
        await bob.connect()
        await alice.send(bob.email, "hello")  # asks Bob's devices (keys/devices), claims their bundles
        assert (await next_message(bob)).text == "hello"
        assert not await alice.check_identity(bob.email)  # keys/identity/lookup
        await alice.remove_contact(bob.email)  # contacts/remove
    log = client_server.log_text()
    # The log is on and recorded these very requests...
    for request_line in (
        '"POST /api/v1/keys/devices"',
        '"POST /api/v1/keys/bundles"',
        '"POST /api/v1/keys/identity/lookup"',
        '"POST /api/v1/contacts/remove"',
    ):
        assert request_line in log
    # ...without naming anyone: not the emails, nor their local parts (URL-encoded or not).
    for email in (alice.email, bob.email):
        local_part = email.split("@")[0]
        assert local_part not in log, f"{local_part} appears in the server log"

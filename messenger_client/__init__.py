"""Python client of Secured Messenger. ``messenger_client.protocol`` is the end-to-end encryption protocol."""

"""Serializer fields shared by the apps."""

from rest_framework import serializers


class BoundedListField(serializers.ListField):
    """A ListField that refuses a list longer than `max_length` before validating any item.

    DRF's ListField validates every item first and runs its length validators afterwards, so
    an upload of 31,000 one-time prekeys cost seconds of key checks (each a scalar
    multiplication) before its 400. Here the count of the raw list is checked first; the items
    are validated only when there are at most `max_length` of them."""

    def to_internal_value(self, data):
        if self.max_length is not None and isinstance(data, list | tuple) and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)

from django.core.management.base import BaseCommand

from accounts.ratelimit import rate_limit_purge


class Command(BaseCommand):
    help = (
        "Delete rate-limit buckets that are full again and expired sign-in address marks "
        "(both behave exactly like missing rows)."
    )

    def handle(self, *args, **options):
        deleted = rate_limit_purge()
        self.stdout.write(f"Deleted {deleted} full rate-limit buckets.")

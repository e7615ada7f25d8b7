"""Delete one-time prekeys claimed, and signed prekeys retired, more than N days ago. Run it
daily (cron or a systemd timer), e.g. `manage.py purge_prekeys --older-than 30`."""

from django.core.management.base import BaseCommand

from keys.services import prekeys_purge


class Command(BaseCommand):
    help = "Delete one-time prekeys claimed, and signed prekeys retired, more than --older-than days ago."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            required=True,
            metavar="DAYS",
            help="Age in days of the claim (one-time prekeys) or retirement (signed prekeys); 0 or more.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args, older_than: int, dry_run: bool = False, **options):
        if older_than < 0:
            self.stderr.write("--older-than must be 0 or more.")
            raise SystemExit(2)
        result = prekeys_purge(older_than_days=older_than, dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {result.one_time_prekeys} claimed one-time prekeys and {result.signed_prekeys} "
            f"retired signed prekeys older than {older_than} days."
        )

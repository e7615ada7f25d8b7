"""Apply message retention: erase delivered bodies, delete expired undelivered envelopes and the
undelivered copies of removed devices. Run it daily (cron or a systemd timer)."""

from django.core.management.base import BaseCommand

from chat.services import envelopes_purge


class Command(BaseCommand):
    help = (
        "Erase the bodies of delivered envelopes and delete undelivered ones past MESSAGE_RETENTION_DAYS "
        "or addressed to a removed device."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be purged.")

    def handle(self, *args, dry_run: bool = False, **options):
        result = envelopes_purge(dry_run=dry_run)
        prefix = "Would erase" if dry_run else "Erased"
        self.stdout.write(
            f"{prefix} {result.bodies_erased} delivered bodies; "
            f"{'would delete' if dry_run else 'deleted'} {result.expired_deleted} expired or undeliverable envelopes."
        )

"""Audit every device's public keys: one-time prekey supply, signed prekey age, signatures,
duplicate ids. Exit status 1 when anything is wrong, so it can run from cron or monitoring.
The checks are `keys.selectors.prekeys_audit`; this command only formats them."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import normalize_email
from keys.models import ONE_TIME_PREKEYS_LOW
from keys.selectors import PROBLEMS, PreKeyAudit, prekeys_audit

COLUMNS = [("EMAIL", 30), ("DEVICE", 7), ("UNUSED", 7), ("SPK ID", 10), ("SPK AGE", 9), ("PROBLEMS", 0)]


class Command(BaseCommand):
    help = (
        f"Check each device's keys: unused one-time prekeys (low below {ONE_TIME_PREKEYS_LOW}), "
        "signed prekey age (SIGNED_PREKEY_MAX_AGE_DAYS), signatures re-verified, duplicate key ids. "
        "Exit status 1 when any account has a problem."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["table", "json"], default="table")
        parser.add_argument("--user", metavar="EMAIL", help="Audit this account only.")

    def handle(self, *args, **options):
        email = normalize_email(options["user"]) if options["user"] else None
        audits = prekeys_audit(email=email)
        if email and not audits:
            raise CommandError(f"No active account with device keys has the email {email}.")
        summary = self._summary(audits)
        if options["format"] == "json":
            self.stdout.write(json.dumps({"devices": [vars(a) for a in audits], "summary": summary}, indent=2))
        else:
            self._table(audits)
            self.stdout.write(self._summary_line(summary))
        if summary["users_with_problems"]:
            raise CommandError(f"{summary['users_with_problems']} of {summary['users']} accounts have key problems.")

    def _table(self, audits: list[PreKeyAudit]) -> None:
        self.stdout.write("  ".join(name.ljust(width) for name, width in COLUMNS).rstrip())
        for audit in audits:
            cells = [
                audit.email,
                str(audit.device_id),
                str(audit.unused_one_time_prekeys),
                "-" if audit.signed_prekey_id is None else str(audit.signed_prekey_id),
                "-" if audit.signed_prekey_age_days is None else f"{audit.signed_prekey_age_days}d",
                ", ".join(audit.problems) or "ok",
            ]
            self.stdout.write("  ".join(cell.ljust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True)))

    @staticmethod
    def _summary(audits: list[PreKeyAudit]) -> dict:
        return {
            "users": len({audit.user_id for audit in audits}),
            "users_with_problems": len({audit.user_id for audit in audits if audit.problems}),
            "devices": len(audits),
            "devices_with_problems": sum(1 for audit in audits if audit.problems),
            "problems": {problem: sum(problem in audit.problems for audit in audits) for problem in PROBLEMS},
            "low_threshold": ONE_TIME_PREKEYS_LOW,
            "signed_prekey_max_age_days": settings.SIGNED_PREKEY_MAX_AGE_DAYS,
        }

    @staticmethod
    def _summary_line(summary: dict) -> str:
        found = ", ".join(f"{count} {problem}" for problem, count in summary["problems"].items() if count)
        return (
            f"{summary['users']} accounts ({summary['devices']} devices) audited, "
            f"{summary['users_with_problems']} with problems" + (f" ({found})" if found else "") + "."
        )

"""Forget stored Seedr tokens: everyone's (e.g. after a suspected leak) or one user's (`--user email`)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from seedr import services


class Command(BaseCommand):
    help = "Forget stored Seedr tokens (all users, or --user EMAIL). Their Seedr jobs wait for a new login."

    def add_arguments(self, parser):
        parser.add_argument("--user", help="Only this user's Seedr session (email).")

    def handle(self, *args, **options):
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(email__iexact=options["user"]).first()
            if user is None:
                raise CommandError(f"No user with the email {options['user']!r}.")
        summary = services.purge_tokens(user=user)
        self.stdout.write(
            f"Purged {summary['accounts']} Seedr session(s); {summary['jobs_waiting']} job(s) now wait for a new "
            f"login; {summary['device_logins']} pending device login(s) dropped."
        )

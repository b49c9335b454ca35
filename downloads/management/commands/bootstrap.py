"""Prepare an install: migrate, collect static files, and create the first admin (credentials printed once)."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, call_command

from accounts.audit import record_audit


class Command(BaseCommand):
    help = "Migrate, collect static files and create the first admin account if there is none."

    def add_arguments(self, parser):
        parser.add_argument("--admin-email", default="admin@example.com")

    def handle(self, *args, admin_email: str, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("Database ready; an admin account already exists.")
            return
        password = secrets.token_urlsafe(12)
        admin = User.objects.create_superuser(admin_email, password)
        record_audit("user.bootstrap_admin", target=admin)
        line = "=" * 64
        self.stdout.write(
            self.style.WARNING(
                f"{line}\n  First admin account (shown only this once, change it after logging in):\n"
                f"    email:    {admin_email}\n    password: {password}\n{line}"
            )
        )

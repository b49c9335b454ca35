from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        import accounts.checks  # (registers the rate-limit settings check)
        import accounts.signals  # noqa: F401  (login/logout audit rows)
        import config.checks  # noqa: F401  (registers the settings checks)
        from accounts.roles import on_post_migrate

        # Permissions of models added by later migrations join the Operators group (see accounts/roles.py).
        post_migrate.connect(on_post_migrate, dispatch_uid="accounts.sync_operators_group")

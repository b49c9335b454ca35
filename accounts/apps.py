from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        import accounts.signals  # noqa: F401  (login/logout audit rows)
        import config.checks  # noqa: F401  (registers the settings checks)

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import schema, signals  # noqa: F401  (the OpenAPI auth description; the receivers)
        from messenger import checks  # noqa: F401  (registers the secrets check)

"""Settings for the whole service, read once from ``FRONTDESK_*`` variables and ``.env``."""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    production = "production"


class SmtpSecurity(StrEnum):
    none = "none"
    starttls = "starttls"
    tls = "tls"


class Settings(BaseSettings):
    """Every setting of the service. Field names map to ``FRONTDESK_<NAME>`` variables."""

    model_config = SettingsConfigDict(
        env_prefix="FRONTDESK_", env_file=".env", extra="ignore", validate_default=True
    )

    env: Environment = Environment.development
    data_dir: Path = Path("frontdesk-data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite file frontdesk.db in the data folder.",
    )
    database_pool_size: int = 10
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(
        default=None,
        description="Base URL for links in emails and public_url. Default: http://HOST:PORT.",
    )

    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs access tokens and form tokens. Generated into the data folder "
        "on the embedded default when unset.",
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated KEY_ID:BASE64_32_BYTES list; the first one encrypts.",
    )

    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    refresh_reuse_grace_seconds: int = 10
    verification_token_ttl_seconds: int = 7 * 24 * 3600
    reset_token_ttl_seconds: int = 3600
    invitation_ttl_seconds: int = 7 * 24 * 3600

    # argon2id cost. The defaults are OWASP's first recommended set
    # (m=19 MiB, t=2, p=1; OWASP Password Storage Cheat Sheet, 2023 revision).
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: SmtpSecurity = SmtpSecurity.starttls
    smtp_timeout_seconds: float = 20.0
    smtp_verify_certificate: bool = Field(
        default=True,
        description="Check the SMTP server's TLS certificate and host name. Turn off only for "
        "a test server with a self-signed certificate.",
    )
    email_from: str = "Frontdesk <frontdesk@localhost>"
    acknowledgements_per_recipient_per_day: int = 3

    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or CIDR ranges whose X-Forwarded-For is trusted.",
    )
    rate_limit_store: Literal["memory", "database", "redis"] = "memory"
    rate_limits_enabled: bool = True
    max_body_bytes: int = 1024 * 1024
    email_max_attachment_bytes: int = Field(
        default=10 * 1024 * 1024,
        description="Largest total size of one email's attachments, in bytes.",
    )
    inbound_max_bytes: int = Field(
        default=30 * 1024 * 1024,
        description="Largest received email (raw upload or inbound webhook), in bytes.",
    )
    email_providers_allow_private_networks: bool = Field(
        default=False,
        description="Let workspaces point email providers at loopback or private addresses.",
    )
    form_multipart_max_bytes: int = Field(
        default=50 * 1024 * 1024,
        description="Body limit of a hosted form page's post, files included, in bytes.",
    )
    form_min_fill_seconds: float = 3.0
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    broker: Literal["memory", "postgres", "redis"] | None = Field(
        default=None, description="Realtime broker. Default: postgres on Postgres, else memory."
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for the redis broker and rate-limit store, like redis://host:6379/0.",
    )
    event_replay_window_seconds: int = 24 * 3600
    realtime_auth_timeout_seconds: float = 10.0
    realtime_send_queue_size: int = Field(
        default=256,
        ge=1,
        description="Events waiting to be sent to one WebSocket client; a client that falls "
        "further behind is disconnected (close code 4010).",
    )
    realtime_poll_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between reads of the events table when no broker signal arrives.",
    )
    realtime_presence_grace_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a member must have no connection on any process before staff "
        "see them offline.",
    )
    realtime_presence_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between the presence reports each process sends the others; a "
        "process silent for three intervals no longer counts.",
    )

    job_poll_interval_seconds: float = 1.0
    job_max_attempts: int = 10
    job_backoff_base_seconds: float = 2.0
    job_backoff_max_seconds: float = 3600.0
    job_lease_seconds: float = 300.0
    shutdown_grace_seconds: float = 30.0

    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path | None = Field(
        default=None, description="Folder of the local backend. Default: DATA_DIR/files."
    )
    storage_max_object_bytes: int = 50 * 1024 * 1024
    storage_workspace_quota_bytes: int = 5 * 1024 * 1024 * 1024
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_bucket: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_force_path_style: bool = False
    s3_multipart_part_bytes: int = 8 * 1024 * 1024
    clamd_host: str | None = None
    clamd_port: int = 3310
    clamd_timeout_seconds: float = 30.0
    preview_max_pixels: int = 40_000_000

    chat_upload_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, description="Largest file a chat visitor may upload."
    )
    chat_email_fallback_delay_seconds: int = Field(
        default=120,
        ge=0,
        description="Seconds after a staff reply before it is emailed to a visitor who has "
        "not read it.",
    )
    chat_visitors_per_ip_per_hour: int = Field(default=20, ge=1)
    chat_writes_per_visitor_per_minute: int = Field(default=60, ge=1)
    chat_writes_per_ip_per_minute: int = Field(default=300, ge=1)
    chat_uploads_per_visitor_per_hour: int = Field(default=30, ge=1)
    payment_page_requests_per_ip_per_minute: int = Field(
        default=60,
        ge=1,
        description="Requests one IP address may make to payment pages per minute.",
    )

    stripe_api_base: str = Field(
        default="https://api.stripe.com",
        description="Base URL of the Stripe API; tests point it at a local fake server.",
    )
    stripe_timeout_seconds: float = Field(default=30.0, gt=0)
    stripe_max_retries: int = Field(default=2, ge=0)
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1)

    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _check_redis(self) -> Settings:
        uses_redis = self.broker == "redis" or self.rate_limit_store == "redis"
        if uses_redis and not self.redis_url:
            raise ValueError(
                "FRONTDESK_REDIS_URL must be set when FRONTDESK_BROKER or "
                "FRONTDESK_RATE_LIMIT_STORE is redis"
            )
        return self

    @field_validator("secret_key")
    @classmethod
    def _check_secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        # HS256 keys shorter than the 32-byte hash output weaken the signature (RFC 7518, 3.2).
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "must be at least 32 characters; 'frontdesk generate-secrets' makes one"
            )
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [ip_network(part.strip(), strict=False) for part in value.split(",") if part]
        return value

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'frontdesk.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def is_embedded_default(self) -> bool:
        """True on SQLite in development: the only place where secrets may be generated."""
        return self.is_sqlite and self.env == Environment.development

    @property
    def resolved_storage_dir(self) -> Path:
        return self.storage_dir or self.data_dir / "files"

    @property
    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def resolved_broker(self) -> str:
        if self.broker:
            return self.broker
        return "memory" if self.is_sqlite else "postgres"

    @property
    def uses_outbox(self) -> bool:
        return not self.smtp_host

"""The one settings object: pydantic-settings, frozen, environment prefix ``SHELFOPS_``.

Entry points build it once (``Settings()``) and pass it down; nothing reads the environment at
import time. Every path is derived from ``home`` so a whole run lives in one folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class QualityThresholds(BaseSettings):
    """Thresholds of the data-quality gate that ``shelfops data ingest`` applies."""

    model_config = SettingsConfigDict(env_prefix="SHELFOPS_QUALITY_", frozen=True)

    max_quarantine_share: float = Field(
        0.05, description="Largest tolerated share of rows quarantined."
    )
    min_customer_id_completeness: float = Field(
        0.5, description="Smallest tolerated share of product lines that carry a customer id."
    )
    max_cancellation_share: float = Field(
        0.25, description="Largest tolerated share of cancelled lines."
    )
    max_staleness_days: int | None = Field(
        45,
        description="Largest tolerated age of the newest event, in days (None disables the check).",
    )
    min_rows: int = Field(100, description="Fewest accepted transaction lines worth training on.")


class Settings(BaseSettings):
    """ShelfOps runtime settings, read from ``SHELFOPS_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="SHELFOPS_", frozen=True)

    profile: Literal["local", "cluster"] = Field(
        "local", description="Runtime profile: embedded local stores, or the cluster services."
    )
    home: Path = Field(
        Path("local_outputs"), description="Folder that holds data, features, models and reports."
    )
    consent_policy: Literal["opt_out", "opt_in"] = Field(
        "opt_out",
        description="How customers without a consent record are treated: allowed unless opted out "
        "(opt_out, the CCPA default) or excluded unless opted in (opt_in).",
    )
    feast_project: str = Field("shelfops", description="Feast project name.")
    redis_url: str | None = Field(
        None, description="Redis online store as host:port (cluster profile); None uses SQLite."
    )
    redis_password: SecretStr | None = Field(None, description="Redis password, from a secret.")
    seed: int = Field(7, description="Seed for every random choice ShelfOps makes.")
    actor: str | None = Field(None, description="Who runs commands, recorded in audit logs.")

    @property
    def root(self) -> Path:
        """The absolute home folder."""
        return self.home.expanduser().resolve()

    @property
    def raw_dir(self) -> Path:
        """Landing zone: generated exports and the raw copy of every ingested file."""
        return self.root / "raw"

    @property
    def clean_dir(self) -> Path:
        """Validated transactions, customers and products as parquet."""
        return self.root / "clean"

    @property
    def quarantine_dir(self) -> Path:
        """Rejected rows with their reasons."""
        return self.root / "quarantine"

    @property
    def reports_dir(self) -> Path:
        """Data-quality, training and backtest reports."""
        return self.root / "reports"

    @property
    def features_dir(self) -> Path:
        """Offline feature tables (Feast file sources)."""
        return self.root / "features"

    @property
    def feast_dir(self) -> Path:
        """Feast registry and SQLite online store."""
        return self.root / "feast"

    @property
    def audit_log(self) -> Path:
        """Append-only privacy audit log (JSON lines)."""
        return self.root / "audit" / "privacy.jsonl"

    @property
    def bentoml_home(self) -> Path:
        """Project-local BentoML home (model store and bentos)."""
        return self.root / "bentoml"

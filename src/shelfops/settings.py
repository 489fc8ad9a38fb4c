"""The one settings object: pydantic-settings, frozen, environment prefix ``SHELFOPS_``.

Entry points build it once (``Settings()``) and pass it down; nothing reads the environment at
import time. Every path is derived from ``home`` so a whole run lives in one folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
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


class MonitorSettings(BaseSettings):
    """Monitoring: logging rates, drift and performance thresholds, cost, retraining triggers.

    Threshold defaults are DESIGN.md's retail alerts; read from ``SHELFOPS_MONITOR_*``.
    """

    model_config = SettingsConfigDict(env_prefix="SHELFOPS_MONITOR_", frozen=True)

    sample_rate: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of requests whose prediction is logged."
    )
    flush_records: int = Field(
        1000, ge=1, description="Flush the prediction log to a new parquet part every N records."
    )
    flush_seconds: float = Field(
        30.0, gt=0, description="Flush the prediction log at least this often, in seconds."
    )
    window_days: int = Field(3, ge=1, description="Recent window that `monitor check` reads.")
    min_samples: int = Field(
        100,
        ge=1,
        description="Fewest distinct logged rows (per entity) before a feature's drift is judged.",
    )
    psi_max: float = Field(0.2, description="Significant drift: PSI above this.")
    ks_alpha: float = Field(
        0.01,
        description="KS test significance level (Bonferroni-corrected over features); drift is "
        "flagged only when PSI and KS agree.",
    )
    segment_min_samples: int = Field(
        20, ge=1, description="Fewest distinct rows in a segment (e.g. a category) to judge it."
    )
    drifted_features_min: int = Field(
        1, ge=1, description="Drifted features needed to call the model's inputs drifted."
    )
    ignore_features: tuple[str, ...] = Field(
        ("last_purchase_ts", "weeks_since_first_sale"),
        description="Inputs left out of drift checks (they move with the calendar by design).",
    )
    accuracy_ratio_min: float = Field(
        0.8,
        description="Alert when accuracy on actuals falls below this share of its validated level.",
    )
    accuracy_min_actuals: int = Field(
        50, ge=1, description="Fewest forecast-actual pairs before accuracy is judged."
    )
    confidence_min: float = Field(
        0.7, description="Alert when mean prediction confidence is below."
    )
    price_per_cpu_hour_usd: float = Field(
        0.04, ge=0, description="Price of one CPU-hour, in USD, for cost per 1k predictions."
    )
    cost_budget_per_1k_usd: float = Field(
        0.001, gt=0, description="Budgeted serving cost per 1,000 predictions, in USD."
    )
    cost_over_budget_ratio: float = Field(
        1.15, description="Alert when cost per 1k exceeds the budget times this factor."
    )
    github_repository: str | None = Field(
        None, description="owner/name that receives the repository_dispatch (cluster profile)."
    )
    github_api_url: str = Field("https://api.github.com", description="GitHub API base URL.")
    github_token_env: str = Field(
        "GITHUB_TOKEN", description="Environment variable holding the token for the dispatch."
    )
    dispatch_event_type: str = Field(
        "drift-detected",
        description="repository_dispatch event type (.github/workflows/retrain.yml).",
    )


class RolloutSettings(BaseSettings):
    """Canary steps, Locust gate thresholds and runtime wiring for ``shelfops rollout``.

    Read from ``SHELFOPS_ROLLOUT_*``; the namespace also accepts the ``SHELFOPS_NAMESPACE`` name
    the CD workflow sets.
    """

    model_config = SettingsConfigDict(
        env_prefix="SHELFOPS_ROLLOUT_", frozen=True, populate_by_name=True
    )

    steps: list[int] = Field(
        [10, 50, 100], description="Canary traffic percentages, gated one after another."
    )
    gate_users: int = Field(4, description="Concurrent Locust users per gate run.")
    gate_duration_s: float = Field(10.0, description="Length of each Locust gate run, seconds.")
    max_p95_ms: float = Field(500.0, description="Largest tolerated canary p95 latency, ms.")
    max_p99_ms: float = Field(1000.0, description="Largest tolerated canary p99 latency, ms.")
    max_error_rate: float = Field(0.01, description="Largest tolerated share of failed requests.")
    min_rps: float = Field(1.0, description="Smallest acceptable canary throughput, requests/s.")
    p95_factor: float = Field(
        1.2, description="Canary p95 may exceed the stable's p95 by at most this factor."
    )
    p95_slack_ms: float = Field(
        20.0,
        description="Absolute allowance added to the relative p95 limit, so that millisecond "
        "noise on very fast models does not fail the gate.",
    )
    business_check: bool = Field(
        False, description="Also compare the canary's registered validation metric."
    )
    business_tolerance: float = Field(
        0.02, description="Largest tolerated relative loss of the registered metric."
    )
    ready_timeout_s: float = Field(
        120.0, description="How long a new revision may take to be ready."
    )
    drain_timeout_s: float = Field(5.0, description="Longest wait for in-flight requests to end.")
    keep_previous: bool = Field(
        True, description="Keep the previous stable revision warm after promotion (fast rollback)."
    )
    recs_port: int = Field(3100, description="Local runtime: stable endpoint port of recs.")
    demand_port: int = Field(3101, description="Local runtime: stable endpoint port of demand.")
    report_dir: Path | None = Field(
        None,
        description="Where gate CSV/HTML reports go (default: .shelfops/loadtests for kserve, "
        "<home>/loadtests locally).",
    )
    locustfile: Path | None = Field(
        None, description="Locust file (default: loadtests/locustfile.py of the repository)."
    )
    namespace: str = Field(
        "shelfops",
        validation_alias=AliasChoices("SHELFOPS_ROLLOUT_NAMESPACE", "SHELFOPS_NAMESPACE"),
        description="Kubernetes namespace of the InferenceServices.",
    )
    inputs_configmap: str = Field(
        "shelfops-inference",
        description="ConfigMap the Helm chart renders with each model's InferenceService inputs "
        "(image repository, resources, env, ...): '<release fullname>-inference'.",
    )
    kubeconfig: Path | None = Field(None, description="kubeconfig file (default ~/.kube/config).")
    kube_context: str | None = Field(None, description="kubeconfig context to use.")


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
    feast_registry: str | None = Field(
        None,
        description="Feast registry: a file path or an object-store URI (s3://, gs://). Default: "
        "<home>/feast/registry.db. The Helm chart sets it from featureStore.registry.path for "
        "every workload, and feature_repo/feature_store.cluster.yaml reads the same variable.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis online store as host:port or redis(s)://host:port/db (cluster "
        "profile); None uses SQLite.",
    )
    redis_password: SecretStr | None = Field(None, description="Redis password, from a secret.")
    redis_password_file: Path | None = Field(
        None,
        description="File holding the Redis password (a mounted Secret, as pipeline steps get "
        "it); read when SHELFOPS_REDIS_PASSWORD is unset and the file exists.",
    )
    seed: int = Field(7, description="Seed for every random choice ShelfOps makes.")
    actor: str | None = Field(None, description="Who runs commands, recorded in audit logs.")

    @model_validator(mode="before")
    @classmethod
    def _password_from_file(cls, data: Any) -> Any:
        """Fill ``redis_password`` from ``redis_password_file`` (an optional mounted Secret)."""
        if isinstance(data, dict) and not data.get("redis_password"):
            path = data.get("redis_password_file")
            if path and Path(path).is_file():
                data = {**data, "redis_password": Path(path).read_text().strip()}
        return data

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
    def registry_path(self) -> str:
        """Where the Feast registry lives (``feast_registry`` or ``<home>/feast/registry.db``)."""
        return self.feast_registry or str(self.feast_dir / "registry.db")

    @property
    def audit_log(self) -> Path:
        """Append-only privacy audit log (JSON lines)."""
        return self.root / "audit" / "privacy.jsonl"

    @property
    def bentoml_home(self) -> Path:
        """Project-local BentoML home (model store and bentos)."""
        return self.root / "bentoml"


class ServingSettings(BaseSettings):
    """Settings of one model server process, read from ``SHELFOPS_SERVING_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SHELFOPS_SERVING_", frozen=True)

    model_tag: str | None = Field(
        None, description="Registry tag to serve (default: the newest version of the model)."
    )
    rules_file: Path | None = Field(
        None,
        description="Merchandising rules YAML (default: the rules shipped with the service).",
    )
    rules_yaml: str | None = Field(
        None,
        description="Merchandising rules as inline YAML (wins over rules_file; the Helm chart "
        "sets it from values).",
    )
    online_timeout_ms: float = Field(
        150.0,
        gt=0,
        description="Longest wait for the online feature store before serving a fallback.",
    )
    catalog_refresh_s: float = Field(
        300.0, gt=0, description="How often the product catalogue snapshot is reloaded."
    )
    forecast_refresh_s: float = Field(
        300.0,
        ge=0,
        description="How often the demand service recomputes, in bulk and off the request path, "
        "the forecast of every product that sold in the last 13 weeks (0: no snapshot; every "
        "request reads the online store and runs the model).",
    )
    rules_reload_s: float = Field(
        2.0,
        gt=0,
        description="How often the recommendation service checks its rules file for changes "
        "(an applied version is in force within this many seconds, without a restart).",
    )
    max_k: int = Field(100, ge=1, description="Largest list length a client may ask for.")
    rule_headroom: int = Field(
        10,
        ge=0,
        description="Personal candidates scored beyond k per customer, so that merchandising "
        "rules can remove some and personal items still fill the list.",
    )
    max_batch: int = Field(
        256, ge=1, description="Most customers or products in one request (larger gets a 413)."
    )
    inject_latency_ms: float = Field(
        0.0, ge=0, description="Fault drill: extra delay added to every prediction request."
    )
    never_ready: bool = Field(
        False, description="Fault drill: readiness stays false so the revision never gets traffic."
    )


class ConsoleSettings(BaseSettings):
    """The web console (``shelfops console``), read from ``SHELFOPS_CONSOLE_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SHELFOPS_CONSOLE_", frozen=True)

    viewer_token: SecretStr | None = Field(
        None, description="Token that signs in a viewer (reads every page, changes nothing)."
    )
    editor_token: SecretStr | None = Field(
        None, description="Token that signs in an editor (may also apply and roll back rules)."
    )
    recs_url: str | None = Field(
        None,
        description="Base URL of the running recommendation service (default: the local "
        "runtime's endpoint recorded by `shelfops rollout`).",
    )
    request_timeout_s: float = Field(
        5.0, gt=0, description="Longest wait for the recommendation service, seconds."
    )
    preview_customers: int = Field(
        200, ge=1, le=5000, description="Customers sampled to preview a rules change."
    )

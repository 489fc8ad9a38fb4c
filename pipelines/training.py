"""The training DAG: raw export to a registered, packaged Bento (and, optionally, a canary).

ingest + validate -> If(data gate) -> features -> train demand | train recs -> evaluate ->
If(model gate) -> register -> package -> If(deploy_canary) -> canary through the rollout engine.
A failed gate runs its ``stop_on_*_gate`` step, which fails the run with the gate's reason.

Every step mounts the same PersistentVolumeClaim (``home_claim``, the Helm chart's home volume)
at :data:`HOME_MOUNT_PATH` and runs with ``SHELFOPS_HOME`` there, so steps share clean data,
features, the Feast registry and the model store the way the local runner shares a folder. Caching
is off on every step: the steps read and write that volume, so equal inputs do not mean equal
results (a scheduled retrain with the same arguments must train again, not hit the cache).
"""

from kfp import dsl, kubernetes
from kfp.dsl.pipeline_channel import PipelineChannel
from kfp.dsl.pipeline_task import PipelineTask

from pipelines import components as c

PIPELINE_NAME = "shelfops-training"
HOME_MOUNT_PATH = "/var/lib/shelfops"
"""Where the shared ShelfOps home is mounted in every step (SHELFOPS_HOME)."""
DEFAULT_HOME_CLAIM = "shelfops-home"
"""The chart's home claim for a release named ``shelfops`` (``<fullname>-home``)."""
DEFAULT_CLUSTER_ENV = "shelfops-env"
"""The chart's cluster-settings ConfigMap for a release named ``shelfops`` (``<fullname>-env``)."""
CLUSTER_ENV_KEYS = (
    "SHELFOPS_PROFILE",
    "SHELFOPS_REDIS_URL",
    "SHELFOPS_FEAST_REGISTRY",
    "SHELFOPS_REDIS_PASSWORD_FILE",
)
"""Settings every step takes from that ConfigMap (the chart renders the same keys)."""
DEFAULT_REDIS_SECRET = "shelfops-redis"
"""The Secret with the Redis password (the chart's ``redis.auth.existingSecret``), if any."""
REDIS_SECRET_MOUNT = "/var/run/secrets/shelfops-redis"
"""Where every step mounts that Secret; SHELFOPS_REDIS_PASSWORD_FILE names the key below it."""


def on_shared_home(
    task: PipelineTask,
    claim: str | PipelineChannel,
    cluster_env: str | PipelineChannel,
    redis_secret: str | PipelineChannel = DEFAULT_REDIS_SECRET,
) -> PipelineTask:
    """Mount the shared home, take the cluster settings from the chart, turn caching off.

    Args:
        task: A pipeline task.
        claim: Name of the PersistentVolumeClaim holding the ShelfOps home.
        cluster_env: Name of the chart's ConfigMap with the cluster settings (Redis, registry).
        redis_secret: Secret with the Redis password, mounted when it exists (no auth: absent).

    Returns:
        The task.
    """
    kubernetes.mount_pvc(task, pvc_name=claim, mount_path=HOME_MOUNT_PATH)
    kubernetes.use_config_map_as_env(
        task, config_map_name=cluster_env, config_map_key_to_env={k: k for k in CLUSTER_ENV_KEYS}
    )
    kubernetes.use_secret_as_volume(
        task, secret_name=redis_secret, mount_path=REDIS_SECRET_MOUNT, optional=True
    )
    task.set_env_variable("SHELFOPS_HOME", HOME_MOUNT_PATH)
    task.set_caching_options(False)
    return task


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="ShelfOps: ingest and validate, features, train demand and recommendations, "
    "gate against baselines, register and package the Bentos.",
)
def training_pipeline(
    home: str = "",
    transactions: str = "",
    customers: str = "",
    products: str = "",
    promotions: str = "",
    as_of: str = "",
    model: str = "all",
    horizon_weeks: int = 13,
    demand_margin: float = 0.05,
    recs_margin: float = 0.05,
    accept_served_gap: bool = False,
    deploy_canary: bool = False,
    home_claim: str = DEFAULT_HOME_CLAIM,
    cluster_env: str = DEFAULT_CLUSTER_ENV,
    redis_secret: str = DEFAULT_REDIS_SECRET,
) -> None:
    """Train, gate, register and package the ShelfOps models.

    Args:
        home: ShelfOps home the steps share (empty: SHELFOPS_HOME of the component image).
        transactions: Transactions export (empty: the generated sample in the home).
        customers: Customers file (empty: the generated one if present, else derived).
        products: Products file (empty: the generated one if present, else derived).
        promotions: Weekly planned promotions file (empty: none).
        as_of: Measure data staleness against this date, YYYY-MM-DD (empty: now).
        model: Which models to train: all, demand or recs.
        horizon_weeks: Demand forecast horizon in weeks.
        demand_margin: Required WRMSSE reduction over the best demand baseline.
        recs_margin: Required Recall@10 gain over the best recommendation baseline.
        accept_served_gap: Register the recommender even when its served Recall@10 is more than
            5% below offline (recorded in the registry metadata).
        deploy_canary: Canary-deploy the new Bentos through the rollout engine.
        home_claim: PersistentVolumeClaim every step mounts as its ShelfOps home (cluster runs).
        cluster_env: ConfigMap (rendered by the Helm chart) holding the cluster settings.
        redis_secret: Secret holding the Redis password (``redis.auth.existingSecret``); the
            steps run without one when it does not exist.
    """
    ingest = c.ingest_data(
        home=home,
        transactions=transactions,
        customers=customers,
        products=products,
        promotions=promotions,
        as_of=as_of,
    )
    on_shared_home(ingest, home_claim, cluster_env, redis_secret)
    with dsl.If(ingest.outputs["passed"] == True, name="data-gate-passed"):  # noqa: E712
        features = c.build_features(home=home, clean=ingest.outputs["clean"])
        on_shared_home(features, home_claim, cluster_env, redis_secret)
        demand = c.train_demand(
            home=home,
            selection=model,
            horizon_weeks=horizon_weeks,
            features=features.outputs["features"],
        )
        on_shared_home(demand, home_claim, cluster_env, redis_secret)
        recs = c.train_recs(
            home=home,
            selection=model,
            horizon_weeks=horizon_weeks,
            features=features.outputs["features"],
        )
        on_shared_home(recs, home_claim, cluster_env, redis_secret)
        evaluate = c.evaluate_models(
            demand=demand.outputs["model"],
            recs=recs.outputs["model"],
            demand_margin=demand_margin,
            recs_margin=recs_margin,
            accept_served_gap=accept_served_gap,
        )
        on_shared_home(evaluate, home_claim, cluster_env, redis_secret)
        with dsl.If(evaluate.outputs["passed"] == True, name="model-gate-passed"):  # noqa: E712
            register = c.register_models(
                home=home,
                demand=demand.outputs["model"],
                recs=recs.outputs["model"],
                gates=evaluate.outputs["gates"],
            )
            on_shared_home(register, home_claim, cluster_env, redis_secret)
            package = c.package_bentos(
                home=home,
                demand_tag=register.outputs["demand_tag"],
                recs_tag=register.outputs["recs_tag"],
            )
            on_shared_home(package, home_claim, cluster_env, redis_secret)
            with dsl.If(deploy_canary == True, name="canary-requested"):  # noqa: E712
                on_shared_home(
                    c.deploy_canary(
                        home=home,
                        demand_tag=register.outputs["demand_tag"],
                        recs_tag=register.outputs["recs_tag"],
                        demand_bento=package.outputs["demand_bento"],
                        recs_bento=package.outputs["recs_bento"],
                    ),
                    home_claim,
                    cluster_env,
                    redis_secret,
                )
        with dsl.Else(name="model-gate-failed"):
            on_shared_home(
                c.stop_on_model_gate(reason=evaluate.outputs["reason"]),
                home_claim,
                cluster_env,
                redis_secret,
            )
    with dsl.Else(name="data-gate-failed"):
        on_shared_home(
            c.stop_on_data_gate(reason=ingest.outputs["reason"]),
            home_claim,
            cluster_env,
            redis_secret,
        )

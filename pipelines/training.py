"""The training DAG: raw export to a registered, packaged Bento (and, optionally, a canary).

ingest + validate -> If(data gate) -> features -> train demand | train recs -> evaluate ->
If(model gate) -> register -> package -> If(deploy_canary) -> canary through the rollout engine.
A failed gate runs its ``stop_on_*_gate`` step, which fails the run with the gate's reason.
"""

from kfp import dsl

from pipelines import components as c

PIPELINE_NAME = "shelfops-training"


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
    as_of: str = "",
    model: str = "all",
    horizon_weeks: int = 13,
    demand_margin: float = 0.05,
    recs_margin: float = 0.05,
    deploy_canary: bool = False,
) -> None:
    """Train, gate, register and package the ShelfOps models.

    Args:
        home: ShelfOps home the steps share (empty: SHELFOPS_HOME of the component image).
        transactions: Transactions export (empty: the generated sample in the home).
        customers: Customers file (empty: the generated one if present, else derived).
        products: Products file (empty: the generated one if present, else derived).
        as_of: Measure data staleness against this date, YYYY-MM-DD (empty: now).
        model: Which models to train: all, demand or recs.
        horizon_weeks: Demand forecast horizon in weeks.
        demand_margin: Required WRMSSE reduction over the best demand baseline.
        recs_margin: Required Recall@10 gain over the best recommendation baseline.
        deploy_canary: Canary-deploy the new Bentos through the rollout engine.
    """
    ingest = c.ingest_data(
        home=home, transactions=transactions, customers=customers, products=products, as_of=as_of
    )
    with dsl.If(ingest.outputs["passed"] == True, name="data-gate-passed"):  # noqa: E712
        features = c.build_features(home=home, clean=ingest.outputs["clean"])
        demand = c.train_demand(
            home=home,
            selection=model,
            horizon_weeks=horizon_weeks,
            features=features.outputs["features"],
        )
        recs = c.train_recs(
            home=home,
            selection=model,
            horizon_weeks=horizon_weeks,
            features=features.outputs["features"],
        )
        evaluate = c.evaluate_models(
            demand=demand.outputs["model"],
            recs=recs.outputs["model"],
            demand_margin=demand_margin,
            recs_margin=recs_margin,
        )
        with dsl.If(evaluate.outputs["passed"] == True, name="model-gate-passed"):  # noqa: E712
            register = c.register_models(
                home=home,
                demand=demand.outputs["model"],
                recs=recs.outputs["model"],
                gates=evaluate.outputs["gates"],
            )
            package = c.package_bentos(
                home=home,
                demand_tag=register.outputs["demand_tag"],
                recs_tag=register.outputs["recs_tag"],
            )
            with dsl.If(deploy_canary == True, name="canary-requested"):  # noqa: E712
                c.deploy_canary(
                    home=home,
                    demand_tag=register.outputs["demand_tag"],
                    recs_tag=register.outputs["recs_tag"],
                    demand_bento=package.outputs["demand_bento"],
                    recs_bento=package.outputs["recs_bento"],
                )
        with dsl.Else(name="model-gate-failed"):
            c.stop_on_model_gate(reason=evaluate.outputs["reason"])
    with dsl.Else(name="data-gate-failed"):
        c.stop_on_data_gate(reason=ingest.outputs["reason"])

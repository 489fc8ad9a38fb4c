"""The serving apps in process: predictions, consent, rules, V2 with kserve's client, bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tests.integration.serving.servers import load_server

from shelfops.models.demand import source_name
from shelfops.serving.app import V2_JSON_LENGTH, create_app
from shelfops.serving.demand import DemandServer
from shelfops.serving.headers import SYNTHETIC
from shelfops.serving.recs import RecsServer
from shelfops.serving.schemas import ForecastRequest
from shelfops.settings import ServingSettings, Settings

pytestmark = pytest.mark.integration


def _customers(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(settings.clean_dir / "customers.parquet")


def known_customer(settings: Settings) -> str:
    """A customer with purchase history who allows personalization."""
    behaviour = pd.read_parquet(settings.features_dir / "customer_behaviour.parquet")
    return str(behaviour["customer_id"].value_counts().index[0])


def opted_out_customer(settings: Settings) -> str:
    """A customer who opted out of personalization."""
    customers = _customers(settings)
    return str(
        customers.loc[customers["opted_out_personalization"].astype(bool), "customer_id"].iloc[0]
    )


def catalogue(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(settings.features_dir / "product_catalog.parquet").set_index(
        "stock_code"
    )


def test_known_customer_gets_k_personal_items_with_reasons_that_pass_the_rules(
    recs_client: TestClient, recs_server: RecsServer, trained_home: Settings
) -> None:
    """A customer with history gets k distinct, reasoned items; none breaks a rule."""
    r = recs_client.post("/recommend", json={"customer_id": known_customer(trained_home), "k": 8})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["personalized"] and not body["degraded"]
    assert r.headers["X-ShelfOps-Model-Version"] == recs_server.version == body["model_version"]
    codes = [i["stock_code"] for i in body["items"]]
    assert len(codes) == 8 == len(set(codes))
    assert all(i["reason"] for i in body["items"])
    cat = catalogue(trained_home)
    assert set(recs_server.catalog) == set(recs_server.items)  # every item has its catalogue row
    rules = recs_server.rules
    for code in codes:
        row = cat.loc[code]
        assert not row["discontinued"]
        assert row["inventory_on_hand"] >= rules.min_inventory
        assert row["markdown_count"] <= rules.max_markdown_count


def test_unknown_customer_gets_cold_start_not_an_error(recs_client: TestClient) -> None:
    """An id the store has never seen gets the popularity list with popularity reasons."""
    r = recs_client.post("/recommend", json={"customer_id": "never-seen-42", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["personalized"] and not body["degraded"]
    assert len(body["items"]) == 5
    assert all(i["score"] is None and "this month" in i["reason"] for i in body["items"])


def test_opted_out_customer_is_not_personalised_and_behaviour_is_dropped_unused(
    recs_client: TestClient, recs_server: RecsServer, trained_home: Settings
) -> None:
    """An opted-out customer gets the non-personal list; nothing but the flag is kept of them."""
    customer = opted_out_customer(trained_home)
    body = recs_client.post("/recommend", json={"customer_id": customer}).json()
    assert not body["personalized"] and len(body["items"]) == 10
    assert {i["source"] for i in body["items"]} == {"non_personal"}
    assert all(i["score"] is None for i in body["items"])
    (state,) = recs_server.customers([customer])
    assert state.row == {"opted_out_personalization": True} and not state.personal


def test_every_item_says_where_it_came_from(
    recs_client: TestClient, trained_home: Settings
) -> None:
    """Known customers get personal items first; cold start is labelled; explain lists removals."""
    known = recs_client.post(
        "/recommend",
        json={"customer_id": known_customer(trained_home), "k": 10, "explain": True},
    ).json()
    sources = [i["source"] for i in known["items"]]
    assert sources[0] == "personal"
    assert set(sources) <= {"personal", "popularity_top_up"}
    # popularity only fills the tail of a personal list
    assert sources == sorted(sources, key=lambda s: s != "personal")
    assert known["removed"] is not None
    assert all(r["rule"] and r["reason"] for r in known["removed"])
    cold = recs_client.post("/recommend", json={"customer_id": "never-seen-7", "k": 3}).json()
    assert [i["source"] for i in cold["items"]] == ["cold_start"] * 3 and cold["removed"] is None


def test_context_excludes_basket_items_and_filters_by_category(
    recs_client: TestClient, trained_home: Settings
) -> None:
    """Basket items never come back and a category context keeps to that category."""
    customer = known_customer(trained_home)
    first = recs_client.post("/recommend", json={"customer_id": customer, "k": 5}).json()
    basket = [i["stock_code"] for i in first["items"][:2]]
    category = first["items"][0]["category"]
    again = recs_client.post(
        "/recommend",
        json={"customer_id": customer, "k": 5, "context": {"exclude_stock_codes": basket}},
    ).json()
    assert not set(basket) & {i["stock_code"] for i in again["items"]}
    scoped = recs_client.post(
        "/recommend", json={"customer_id": customer, "k": 3, "context": {"category": category}}
    ).json()
    assert scoped["items"] and all(i["category"] == category for i in scoped["items"])


def test_the_discover_list_serves_no_regulars_over_friendly_and_v2(
    recs_client: TestClient, recs_server: RecsServer, trained_home: Settings
) -> None:
    """``discover`` answers k items, none of the customer's top items, the same over V2.

    Its top-up skips the regulars too; a non-boolean ``discover`` is a 422 that names it.
    """
    customer = known_customer(trained_home)
    (state,) = recs_server.customers([customer])
    regulars = set(map(str, state.row["top_items"]))
    main = recs_client.post("/recommend", json={"customer_id": customer, "k": 10}).json()
    assert {i["stock_code"] for i in main["items"]} & regulars  # the main list has regulars
    body = recs_client.post(
        "/recommend", json={"customer_id": customer, "k": 10, "discover": True}
    ).json()
    codes = [i["stock_code"] for i in body["items"]]
    assert body["personalized"] and len(codes) == 10 == len(set(codes))
    assert not set(codes) & regulars
    assert body["items"][0]["source"] == "personal" and all(i["reason"] for i in body["items"])
    # a k beyond the model's candidates makes the popularity top-up work: no regulars there
    many = recs_client.post(
        "/recommend",
        json={"customer_id": customer, "k": recs_server.serving.max_k, "discover": True},
    ).json()
    sources = {i["source"] for i in many["items"]}
    assert "popularity_top_up" in sources
    assert not {i["stock_code"] for i in many["items"]} & regulars
    v2 = recs_client.post(
        "/v2/models/recs/infer",
        json={
            "inputs": [
                {"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": [customer]},
                {"name": "discover", "datatype": "BOOL", "shape": [1], "data": [True]},
            ]
        },
    )
    assert v2.status_code == 200, v2.text
    (stock,) = [o for o in v2.json()["outputs"] if o["name"] == "stock_code"]
    assert stock["data"] == codes
    bad = recs_client.post(
        "/v2/models/recs/infer",
        json={
            "inputs": [
                {"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": [customer]},
                {"name": "discover", "datatype": "INT32", "shape": [1], "data": [1]},
            ]
        },
    )
    assert bad.status_code == 422 and "discover" in bad.json()["error"]


def test_rules_file_changes_behaviour_without_code(trained_home: Settings, tmp_path) -> None:
    """A stricter YAML (no markdowns at all) removes every item that has taken a markdown."""
    rules = tmp_path / "strict.yaml"
    rules.write_text("max_markdown_count: 0\n")
    server = load_server("recs", trained_home, ServingSettings(rules_file=rules))
    try:
        client = TestClient(create_app(server))
        body = client.post("/recommend", json={"customer_id": known_customer(trained_home)}).json()
    finally:
        server.close()
    cat = catalogue(trained_home)
    assert all(cat.loc[i["stock_code"], "markdown_count"] == 0 for i in body["items"])


def test_forecast_gives_ordered_quantiles_per_week(
    demand_client: TestClient, demand_server: DemandServer, trained_home: Settings
) -> None:
    """P10 <= P50 <= P90 for each requested week; unknown products are flagged, not guessed."""
    codes = catalogue(trained_home).query("not discontinued").index[:3].tolist()
    r = demand_client.post("/forecast", json={"stock_codes": [*codes, "NO-SUCH-SKU"], "horizon": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["degraded"]
    by_code = {f["stock_code"]: f for f in body["forecasts"]}
    assert by_code["NO-SUCH-SKU"]["status"] == "no_data"
    combination = demand_server.predictor.model.combination
    named = {"model"} | {source_name(w) for w in combination.values()}
    for code in codes:
        weeks = by_code[code]["weeks"]
        assert by_code[code]["source"] in named  # the network or its segment's combination
        assert len(weeks) == 4
        for w in weeks:
            assert 0 <= w["p10"] <= w["p50"] <= w["p90"]
        starts = pd.to_datetime([w["week_start"] for w in weeks])
        assert (starts.dayofweek == 0).all() and (
            np.diff(starts.values).astype("timedelta64[D]") == 7
        ).all()


def _v2(app_client: TestClient) -> InferenceRESTClient:
    transport = httpx.ASGITransport(app=app_client.app)
    return InferenceRESTClient(RESTConfig(protocol="v2", transport=transport, retries=0))


def test_v2_protocol_with_kserve_client(
    recs_client: TestClient, demand_client: TestClient, trained_home: Settings
) -> None:
    """kserve's own InferenceRESTClient gets V2 health, readiness and inference from both apps."""
    customer = known_customer(trained_home)
    codes = catalogue(trained_home).query("not discontinued").index[:2].tolist()

    async def run() -> tuple[Any, Any, bool, bool]:
        recs, demand = _v2(recs_client), _v2(demand_client)
        ready = await recs.is_server_ready("http://recs") and await demand.is_server_ready(
            "http://demand"
        )
        model_ready = await recs.is_model_ready("http://recs", "recs")
        req = InferRequest(
            model_name="recs",
            infer_inputs=[InferInput("customer_id", [2], "BYTES", data=[customer, "never-seen"])],
        )
        rec = await recs.infer("http://recs", req, model_name="recs")
        dem_in = InferInput("stock_code", [2], "BYTES", data=codes)
        h = InferInput("horizon", [1], "INT32", data=[3])
        dem = await demand.infer(
            "http://demand",
            InferRequest(model_name="demand", infer_inputs=[dem_in, h]),
            model_name="demand",
        )
        await recs.close()
        await demand.close()
        return rec, dem, ready, model_ready

    rec, dem, ready, model_ready = asyncio.run(run())
    assert ready and model_ready
    stock = rec.outputs[0]
    assert stock.name == "stock_code" and stock.shape == [2, 10]
    assert rec.outputs[1].as_numpy().shape == (2, 10)
    p10, p50, p90 = (dem.get_output_by_name(q).as_numpy() for q in ("p10", "p50", "p90"))
    assert p50.shape == (2, 3) and (p10 <= p50).all() and (p50 <= p90).all()
    meta = recs_client.get("/v2/models/recs").json()
    assert meta["name"] == "recs" and {i["name"] for i in meta["inputs"]} == {
        "customer_id",
        "k",
        "discover",
    }


BAD_RECS: list[tuple[str, str, Any, int, str]] = [
    ("malformed json", "/recommend", b"{not json", 400, "not valid JSON"),
    ("wrong type", "/recommend", {"customer_id": 123}, 422, "customer_id"),
    ("k as string", "/recommend", {"customer_id": "a", "k": "5"}, 422, "k"),
    ("k zero", "/recommend", {"customer_id": "a", "k": 0}, 422, "k"),
    ("k above max", "/recommend", {"customer_id": "a", "k": 101}, 422, "maximum"),
    ("unknown field", "/recommend", {"customer_id": "a", "colour": "red"}, 422, "colour"),
    ("missing id", "/recommend", {"k": 3}, 422, "customer_id"),
    ("empty id", "/recommend", {"customer_id": "  "}, 422, "customer_id"),
    ("body is a list", "/recommend", [1, 2], 422, "body"),
    ("unknown model", "/v2/models/prophet/infer", {"inputs": []}, 404, "unknown model"),
    ("v2 not json", "/v2/models/recs/infer", b"\x00\x01", 400, "V2"),
    ("v2 no inputs key", "/v2/models/recs/infer", {"id": "x"}, 400, "V2"),
    (
        "v2 wrong input",
        "/v2/models/recs/infer",
        {"inputs": [{"name": "user", "datatype": "BYTES", "shape": [1], "data": ["a"]}]},
        422,
        "customer_id",
    ),
    (
        "v2 repeated input",
        "/v2/models/recs/infer",
        {"inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": ["a"]}] * 2},
        422,
        "more than once",
    ),
    (
        "v2 unknown output",
        "/v2/models/recs/infer",
        {
            "inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": ["a"]}],
            "outputs": [{"name": "price"}],
        },
        422,
        "unknown output 'price'",
    ),
    (
        "v2 parameter not a scalar",
        "/v2/models/recs/infer",
        {
            "inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": ["a"]}],
            "parameters": {"tags": ["x"]},
        },
        400,
        "string, number or boolean",
    ),
    (
        "v2 unknown datatype",
        "/v2/models/recs/infer",
        {"inputs": [{"name": "customer_id", "datatype": "TEXT", "shape": [1], "data": ["a"]}]},
        400,
        "datatype",
    ),
    (
        "v2 three dimensions",
        "/v2/models/recs/infer",
        {
            "inputs": [
                {"name": "customer_id", "datatype": "BYTES", "shape": [1, 1, 1], "data": ["a"]}
            ]
        },
        400,
        "dimensions",
    ),
    (
        "v2 oversize batch",
        "/v2/models/recs/infer",
        {
            "inputs": [
                {"name": "customer_id", "datatype": "BYTES", "shape": [300], "data": ["a"] * 300}
            ]
        },
        413,
        "customer_id",
    ),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "status", "says"), BAD_RECS, ids=[c[0] for c in BAD_RECS]
)
def test_bad_recommendation_requests_get_a_4xx_that_says_why(
    recs_client: TestClient, case: str, path: str, body: Any, status: int, says: str
) -> None:
    """Each kind of bad input gets its 4xx and a message naming the problem."""
    if isinstance(body, bytes):
        r = recs_client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = recs_client.post(path, json=body)
    assert r.status_code == status, (case, r.status_code, r.text)
    assert says.lower() in r.json()["error"].lower(), r.text


BAD_DEMAND: list[tuple[str, Any, int, str]] = [
    ("no products", {"stock_codes": []}, 422, "stock_codes"),
    ("codes not a list", {"stock_codes": "85123A"}, 422, "stock_codes"),
    ("horizon beyond model", {"stock_codes": ["a"], "horizon": 60}, 422, "horizon"),
    ("oversize batch", {"stock_codes": [f"p{i}" for i in range(300)]}, 413, "maximum"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "says"), BAD_DEMAND, ids=[c[0] for c in BAD_DEMAND]
)
def test_bad_forecast_requests_get_a_4xx_that_says_why(
    demand_client: TestClient, case: str, body: Any, status: int, says: str
) -> None:
    """Each kind of bad forecast input gets its 4xx and a message naming the problem."""
    r = demand_client.post("/forecast", json=body)
    assert r.status_code == status, (case, r.status_code, r.text)
    assert says.lower() in r.json()["error"].lower(), r.text


def test_oversize_body_is_refused_before_parsing(recs_client: TestClient) -> None:
    """A body over the limit gets a 413 without being read into the model."""
    r = recs_client.post(
        "/recommend", content=b" " * 1_000_001, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "bytes" in r.json()["error"]


def test_metrics_count_requests_by_endpoint_outcome_and_version(
    recs_client: TestClient, recs_server: RecsServer
) -> None:
    """/metrics exposes latency histograms and outcomes labelled with the model version."""
    recs_client.post("/recommend", json={"customer_id": "metrics-probe"})
    recs_client.post("/recommend", json={"customer_id": 1})
    text = recs_client.get("/metrics").text
    version = recs_server.version
    assert (
        f'shelfops_request_duration_seconds_count{{endpoint="/recommend",model="recs",'
        f'model_version="{version}"}}' in text
    )
    for outcome in ("success", "error"):
        assert f'model_version="{version}",outcome="{outcome}"' in text


def test_confidence_histogram_observes_the_mean_sigmoid_of_served_model_scores(
    trained_home: Settings, recs_server: RecsServer
) -> None:
    """One observation per answer with model scores: the mean sigmoid of those scores."""
    behaviour = pd.read_parquet(trained_home.features_dir / "customer_behaviour.parquet")
    ids = behaviour["customer_id"].astype(str).drop_duplicates().head(12).tolist()
    ids += ["confidence-probe-unknown", opted_out_customer(trained_home)]
    labels = {"model": recs_server.name, "model_version": recs_server.version}
    name = "shelfops_prediction_confidence"

    def seen() -> tuple[float, float]:
        sample = recs_server.registry.get_sample_value
        return sample(f"{name}_count", labels) or 0.0, sample(f"{name}_sum", labels) or 0.0

    count0, sum0 = seen()
    answers = recs_server.recommend_many(ids, 10, synthetic=True)
    means = []
    for answer in answers:
        scores = np.array([i.score for i in answer.items if i.score is not None])
        if len(scores):
            means.append(float(np.mean(1.0 / (1.0 + np.exp(-scores)))))
    assert 0 < len(means) < len(ids)  # the unknown and opted-out customers have no model scores
    count1, sum1 = seen()
    assert count1 - count0 == len(means)
    assert sum1 - sum0 == pytest.approx(sum(means), rel=1e-9)


def test_demand_server_has_a_baseline_for_every_product_it_has_seen(
    demand_server: DemandServer,
) -> None:
    """The fallback was warmed from the offline table and names the gate's best baseline."""
    assert demand_server.last_seen
    assert demand_server.fallback in {"naive", "seasonal_naive", "ma4", "ma13"}


def test_served_forecasts_name_the_combination_that_produced_them(
    demand_server: DemandServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each served product says what the model's per-segment combination made of it."""
    from shelfops.serving.demand import this_monday

    model = demand_server.predictor.model
    every = {"model": 0.5, "ma13": 0.5}, {"ma4": 1.0}, {"model": 0.7, "ma4": 0.3}, {"ma13": 1.0}
    combination = dict(zip(("smooth", "intermittent", "sparse", "new"), every, strict=True))
    monkeypatch.setattr(model, "combination", combination)
    codes = sorted(demand_server.last_seen)[:40]
    rows = {
        k: [demand_server.last_seen[c][k] for c in codes] for k in demand_server.last_seen[codes[0]]
    }
    origin = this_monday()
    weeks = [str((origin + pd.Timedelta(weeks=s)).date()) for s in range(3)]
    served = demand_server._forecasts(codes, None, rows, [], origin, weeks)
    want, source = demand_server.predictor.forecast(rows, origin)
    assert [f.source for f in served] == source.tolist()
    assert set(source.tolist()) <= {"model+ma13", "ma4", "model+ma4", "ma13", "model"}
    assert len(set(source.tolist())) > 1
    for f, w in zip(served, want, strict=True):
        assert [x.p50 for x in f.weeks] == pytest.approx(w[:3, 2].tolist(), rel=1e-6)


def test_the_forecast_snapshot_answers_what_the_request_path_computes(
    demand_server: DemandServer, trained_home: Settings
) -> None:
    """Products of the bulk snapshot get the forecast a request-path read and model call give."""
    from shelfops.serving.demand import this_monday

    snap = demand_server.snapshot
    assert snap is not None and snap.origin == this_monday()
    assert 0 < len(snap.row) <= len(demand_server.last_seen)
    codes = sorted(snap.row)[:20]
    request = ForecastRequest(stock_codes=[*codes, "NO-SUCH-SKU"], horizon=4)
    cached = demand_server.forecast(request, synthetic=True)
    live = load_server("demand", trained_home, ServingSettings(forecast_refresh_s=0))
    try:
        assert live.snapshot is None
        direct = live.forecast(request, synthetic=True)
    finally:
        live.close()
    assert not cached.degraded and not direct.degraded
    for a, b in zip(cached.forecasts, direct.forecasts, strict=True):
        assert (a.stock_code, a.status, a.source) == (b.stock_code, b.status, b.source)
        assert [w.week_start for w in a.weeks] == [w.week_start for w in b.weeks]
        np.testing.assert_allclose(
            [(w.p10, w.p50, w.p90) for w in a.weeks],
            [(w.p10, w.p50, w.p90) for w in b.weeks],
            rtol=1e-5,
            atol=1e-6,
        )
    assert cached.forecasts[-1].status == "no_data"


def test_monitored_server_logs_predictions_and_records_feedback(
    trained_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real predictions reach the log and /feedback the store; synthetic traffic reaches neither."""
    from shelfops.monitoring.store import FeedbackStore, read_predictions
    from shelfops.serving.runtime import attach_monitoring

    monkeypatch.setenv("SHELFOPS_MONITOR_SAMPLE_RATE", "1")
    server = load_server("recs", trained_home)
    attach_monitoring(server)
    client = TestClient(create_app(server))
    customer = known_customer(trained_home)
    try:
        ids = [
            client.post("/recommend", json={"customer_id": customer, "k": 3}).json()["request_id"]
            for _ in range(3)
        ]
        synthetic = [
            client.post(
                "/recommend", json={"customer_id": customer, "k": 3}, headers=SYNTHETIC
            ).json()["request_id"]
            for _ in range(2)
        ]
        v2 = {
            "id": "synthetic-v2",
            "inputs": [
                {"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": [customer]}
            ],
        }
        assert client.post("/v2/models/recs/infer", json=v2, headers=SYNTHETIC).status_code == 200
        discover = client.post(
            "/recommend", json={"customer_id": customer, "k": 3, "discover": True}
        ).json()["request_id"]
        bought = client.post("/recommend", json={"customer_id": customer, "k": 1}).json()["items"][
            0
        ]["stock_code"]
        event = {
            "request_id": ids[0],
            "customer_id": customer,
            "stock_code": bought,
            "action": "bought",
            "timestamp": "2026-11-20T10:00:00",
        }
        ok = client.post("/feedback", json=[event])
        assert ok.status_code == 200 and ok.json() == {"recorded": 1}
        gate = client.post(
            "/feedback", json=[{**event, "request_id": synthetic[0]}], headers=SYNTHETIC
        )
        assert gate.status_code == 200 and gate.json() == {"recorded": 0}
        bad = client.post(
            "/feedback", json=[{"stock_code": "a", "week_start": "2026-11-18", "units": 3}]
        )
        assert bad.status_code == 422 and "monday" in bad.json()["error"].lower()
    finally:
        server.close()
    logged = read_predictions(trained_home)
    mine = logged[logged["request_id"].isin(ids)]
    assert len(mine) == 3 and set(mine["customer_id"]) == {customer}
    assert set(mine["model"]) == {"recs"}
    # gate, load-test and benchmark traffic never reaches the log that drift/accuracy read
    assert not set(logged["request_id"]) & {*synthetic, "synthetic-v2"}
    # nor do discover lists, whose scores drift would compare with the main list's reference
    assert discover not in set(logged["request_id"])
    feedback = FeedbackStore(trained_home).read("recommendation")
    assert ids[0] in set(feedback["request_id"]) and synthetic[0] not in set(feedback["request_id"])


def test_a_server_bug_is_a_500_naming_the_request_id_not_a_4xx(
    recs_server: RecsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An internal TypeError is a 500 carrying the request id (V2 and friendly), never a 422."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("a bug, not bad input")

    monkeypatch.setattr(recs_server, "recommend_many", broken)
    client = TestClient(create_app(recs_server), raise_server_exceptions=False)
    v2 = {"inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}
    for path, body in (("/v2/models/recs/infer", v2), ("/recommend", {"customer_id": "a"})):
        r = client.post(path, json=body, headers={"X-Request-Id": "req-42"})
        assert r.status_code == 500, (path, r.text)
        assert "req-42" in r.json()["error"] and r.headers["X-Request-Id"] == "req-42"


@pytest.mark.parametrize("model", ["recs", "demand"])
def test_v2_openapi_documents_the_limits_the_route_enforces(
    model: str, recs_client: TestClient, demand_client: TestClient
) -> None:
    """The V2 request schema names the model's own inputs and outputs and the batch limit."""
    client = recs_client if model == "recs" else demand_client
    meta = client.get(f"/v2/models/{model}").json()
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/v2/models/{model}/infer"]["post"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]["properties"]
    tensor = schema["inputs"]["items"]["properties"]
    assert tensor["name"]["enum"] == [t["name"] for t in meta["inputs"]]
    assert schema["outputs"]["items"]["properties"]["name"]["enum"] == [
        t["name"] for t in meta["outputs"]
    ]
    assert tensor["data"]["maxItems"] == ServingSettings().max_batch
    too_many = ["x"] * (ServingSettings().max_batch + 1)
    name = meta["inputs"][0]["name"]
    r = client.post(
        f"/v2/models/{model}/infer",
        json={
            "inputs": [
                {"name": name, "datatype": "BYTES", "shape": [len(too_many)], "data": too_many}
            ]
        },
    )
    assert r.status_code == 413 and name in r.json()["error"], r.text


def _binary_v2(tensors: list[tuple[str, str, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A V2 body in the binary tensor extension: (name, datatype, raw bytes) per input."""
    header = orjson.dumps(
        {
            "inputs": [
                {"name": n, "datatype": d, "shape": [1], "parameters": {"binary_data_size": len(b)}}
                for n, d, b in tensors
            ]
        }
    )
    body = header + b"".join(b for _, _, b in tensors)
    return body, {V2_JSON_LENGTH: str(len(header)), "content-type": "application/octet-stream"}


def _bytes_element(text: bytes) -> bytes:
    """One BYTES element as the binary extension packs it: 4-byte little-endian length, bytes."""
    return len(text).to_bytes(4, "little") + text


def test_v2_binary_extension_answers_as_json_and_refuses_bad_bytes_with_a_4xx(
    recs_client: TestClient, trained_home: Settings
) -> None:
    """The binary tensor extension gives the JSON request's answer; bad binary input is a 4xx."""
    customer = known_customer(trained_home)
    body, headers = _binary_v2([("customer_id", "BYTES", _bytes_element(customer.encode()))])
    binary = recs_client.post("/v2/models/recs/infer", content=body, headers=headers)
    plain = recs_client.post(
        "/v2/models/recs/infer",
        json={
            "inputs": [
                {"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": [customer]}
            ]
        },
    )
    assert binary.status_code == plain.status_code == 200, binary.text
    assert binary.json()["outputs"][0] == plain.json()["outputs"][0]
    cases = [
        (
            "not UTF-8",
            _binary_v2([("customer_id", "BYTES", _bytes_element(b"\xff\xfe"))]),
            400,
            "utf-8",
        ),
    ]
    short_body, short_headers = _binary_v2([("customer_id", "BYTES", _bytes_element(b"abc"))])
    cases.append(("sizes do not add up", (short_body[:-1], short_headers), 400, "binary_data_size"))
    cases.append(
        (
            "header length past the body",
            (body, {**headers, V2_JSON_LENGTH: str(len(body) + 1)}),
            400,
            V2_JSON_LENGTH,
        )
    )
    for case, (content, hdrs), status, says in cases:
        r = recs_client.post("/v2/models/recs/infer", content=content, headers=hdrs)
        assert r.status_code == status, (case, r.status_code, r.text)
        assert says.lower() in r.json()["error"].lower(), (case, r.text)

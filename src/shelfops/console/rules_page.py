"""The Rules page: view, validate, preview, apply and roll back the merchandising rules.

The form is built from :class:`shelfops.serving.rules.MerchRules` (one input per rule, with its
description), so a rule added there appears here without a change. Validation is the model's
own: a bad value gets its message next to the field and nothing is written. Applying and rolling
back go through :class:`shelfops.serving.rules_store.RulesStore` (versioned, audited); the
recommendation service picks the file up by itself.
"""

from __future__ import annotations

import typing
from typing import Any

import pandas as pd
from pydantic import ValidationError

from shelfops.console.home import HomeData
from shelfops.serving.rules import MerchRules, RulesError
from shelfops.serving.rules_store import RulesStore, RulesVersion, serving_rules_path
from shelfops.settings import ServingSettings, Settings


def rules_in_force(settings: Settings) -> tuple[MerchRules | None, str, str | None]:
    """The rules the service reads now, where from, and the error if that file is invalid."""
    serving = ServingSettings()
    path = serving_rules_path(settings, serving)
    if path is None:
        try:
            return (
                MerchRules.from_text(serving.rules_yaml or ""),
                "SHELFOPS_SERVING_RULES_YAML",
                None,
            )
        except RulesError as exc:
            return None, "SHELFOPS_SERVING_RULES_YAML", str(exc)
    try:
        return MerchRules.from_yaml(path), str(path), None
    except RulesError as exc:
        return None, str(path), str(exc)


def fields() -> list[dict[str, Any]]:
    """One entry per rule: name, description, type and bounds, for the form."""
    out = []
    for name, info in MerchRules.model_fields.items():
        bounds = {
            name: getattr(m, attr)
            for m in info.metadata
            for attr, name in (("ge", "at least"), ("gt", "above"), ("le", "at most"))
            if getattr(m, attr, None) is not None
        }
        origin = typing.get_origin(info.annotation)
        kind = (
            "int"
            if info.annotation is int
            else "float"
            if info.annotation is float
            else "list"
            if origin in (tuple, list)
            else "text"
        )
        if kind == "list":
            choices = [a for arg in typing.get_args(info.annotation) for a in typing.get_args(arg)]
            if choices:
                bounds["any of"] = ", ".join(str(c) for c in choices)
        out.append(
            {
                "name": name,
                "description": info.description or "",
                "kind": kind,
                "bounds": ", ".join(f"{k} {v}" for k, v in bounds.items()),
            }
        )
    return out


def form_values(rules: MerchRules) -> dict[str, str]:
    """The rules as the form shows them (lists comma-separated)."""
    return {
        k: ", ".join(str(x) for x in v) if isinstance(v, tuple | list) else str(v)
        for k, v in rules.model_dump().items()
    }


def parse_form(form: dict[str, str]) -> tuple[MerchRules | None, dict[str, str]]:
    """Validate submitted values; returns the rules or a message per bad field."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields():
        raw = (form.get(f["name"]) or "").strip()
        if raw == "":
            errors[f["name"]] = "required"
            continue
        try:
            values[f["name"]] = (
                int(raw)
                if f["kind"] == "int"
                else float(raw)
                if f["kind"] == "float"
                else tuple(p.strip() for p in raw.split(",") if p.strip())
                if f["kind"] == "list"
                else raw
            )
        except ValueError:
            errors[f["name"]] = (
                f"not a {'whole ' if f['kind'] == 'int' else ''}number: {raw[:40]!r}"
            )
    if len(form.get("note", "")) > 500:
        errors["note"] = "at most 500 characters"
    if errors:
        return None, errors
    try:
        return MerchRules(**values), {}
    except ValidationError as exc:
        for e in exc.errors():
            errors[".".join(str(p) for p in e["loc"]) or "rules"] = e["msg"]
        return None, errors


def context(
    home: HomeData, settings: Settings, form: dict[str, str] | None = None
) -> dict[str, Any]:
    """Everything the Rules page template needs (with the submitted form, when there is one)."""
    store = RulesStore(settings)
    current, source, error = rules_in_force(settings)
    status = store.status()
    proposed, form_errors = (None, {}) if form is None else parse_form(form)
    values = (
        {k: form.get(k, "") for k in MerchRules.model_fields}
        if form is not None
        else form_values(current if current is not None else MerchRules())
    )
    return {
        "current": current,
        "current_values": form_values(current) if current is not None else {},
        "source": source,
        "source_error": error,
        "status": status,
        "store_path": store.current_path,
        "inline": ServingSettings().rules_yaml is not None,
        "fields": fields(),
        "values": values,
        "note": (form or {}).get("note", ""),
        "proposed": proposed,
        "form_errors": form_errors,
        "versions": list(reversed(store.versions())),
        "audit": store.audit(limit=30),
        "preview": None,
    }


def apply(home: HomeData, rules: MerchRules, actor: str, note: str) -> RulesVersion:
    """Put ``rules`` in force as the next version (audited)."""
    current, _, _ = rules_in_force(home.settings)
    return RulesStore(home.settings).apply(rules, actor, note.strip(), base=current)


def rollback(home: HomeData, number: int, actor: str, note: str) -> RulesVersion:
    """Put version ``number`` back in force as a new version (audited).

    Raises:
        KeyError: No such version.
        RulesError: That version's file no longer parses.
    """
    current, _, _ = rules_in_force(home.settings)
    return RulesStore(home.settings).rollback(number, actor, note.strip(), base=current)


def _preview_inputs(home: HomeData, customers: int) -> dict[str, Any] | None:
    """The sample's feature rows and the catalogue snapshot (cached per change of the features)."""
    from shelfops.console.explorer import allowed_customers
    from shelfops.data.consent import PERSONALIZATION_OPT_OUT
    from shelfops.monitoring.simulate import latest_rows
    from shelfops.serving.rules import catalog_from_online

    features = home.settings.features_dir

    def compute() -> dict[str, Any] | None:
        behaviour = features / "customer_behaviour.parquet"
        catalog = features / "product_catalog.parquet"
        if not behaviour.is_file() or not catalog.is_file():
            return None
        rows = latest_rows(pd.read_parquet(behaviour), "customer_id")
        rows["customer_id"] = rows["customer_id"].astype(str)
        allowed = allowed_customers(home)
        rows = rows[rows["customer_id"].isin(allowed) & (rows["top_items"].map(len) > 0)]
        rows = rows.sample(n=min(customers, len(rows)), random_state=home.settings.seed)
        rows = rows.assign(**{PERSONALIZATION_OPT_OUT: False})
        snapshot = latest_rows(pd.read_parquet(catalog), "stock_code")
        return {
            "rows": rows,
            "catalog": catalog_from_online(snapshot.to_dict(orient="list")),
        }

    return home.cached(f"preview:{customers}", [features, *home.clean_deps], compute)


def _run(
    rules: MerchRules, scored: dict[str, list[dict[str, Any]]], inputs: dict[str, Any], k: int
) -> dict[str, Any]:
    """The rules on every sampled customer's candidates, as the service applies them."""
    from shelfops.serving.rules import Candidate, apply_rules

    affinity = dict(
        zip(inputs["rows"]["customer_id"], inputs["rows"]["discount_affinity"], strict=True)
    )
    removed: dict[str, int] = {}
    customers: dict[str, int] = {}
    boosted = 0
    lists: dict[str, list[str]] = {}
    for cid, items in scored.items():
        candidates = [
            Candidate(r["stock_code"], float(r["score"]), r)
            for r in items
            if r["score"] is not None
        ]
        outcome = apply_rules(
            rules, candidates, inputs["catalog"], float(affinity.get(cid) or 0.0), k
        )
        for rule, n in outcome.removed_by_rule().items():
            removed[rule] = removed.get(rule, 0) + n
            customers[rule] = customers.get(rule, 0) + 1
        boosted += sum(1 for kept in outcome.kept if kept.boosted)
        lists[cid] = [kept.candidate.stock_code for kept in outcome.kept]
    return {"removed": removed, "customers": customers, "boosted": boosted, "lists": lists}


def preview(home: HomeData, proposed: MerchRules, customers: int, k: int = 10) -> dict[str, Any]:
    """What ``proposed`` would change against the rules in force, on a sample of customers.

    The sample's latest features are scored once by the registered recommender (the same
    Predictor the service uses, with the same candidate pool of ``2k + 20``), then the one rules
    implementation (:func:`shelfops.serving.rules.apply_rules`) runs with both rule sets.

    Returns:
        ``customers``, ``per_rule`` rows (personal items removed now and with the proposal, and
        customers affected), ``summary`` lines, and ``recall`` (the served-path backtest figure
        when the home has one).
    """
    from shelfops.serving.recs import personal_pool
    from shelfops.serving.rules import REMOVING_RULES
    from shelfops.settings import ServingSettings

    current, _, _ = rules_in_force(home.settings)
    inputs = _preview_inputs(home, customers)
    predictor = home.recs_predictor()
    if inputs is None or predictor is None or inputs["rows"].empty:
        return {
            "customers": 0,
            "per_rule": [],
            "summary": [],
            "note": "No trained recommender or customer features in this home yet: run "
            "`shelfops quickstart` first.",
            "recall": served_recall(home),
        }
    rows = inputs["rows"]
    pool = personal_pool(k, len(predictor.model.stats.items), ServingSettings())  # as served
    scored = home.cached(
        f"preview-scores:{customers}:{k}",
        [home.models_dir, home.settings.features_dir],
        lambda: predictor.predict(rows, k=pool, now=pd.Timestamp.now()),
    )
    now = _run(current or MerchRules(), scored, inputs, k)
    new = _run(proposed, scored, inputs, k)
    per_rule = [
        {
            "rule": rule,
            "before": now["removed"].get(rule, 0),
            "after": new["removed"].get(rule, 0),
            "customers_after": new["customers"].get(rule, 0),
        }
        for rule in REMOVING_RULES
    ]
    changed = sum(1 for c in new["lists"] if new["lists"][c] != now["lists"][c])
    short = sum(1 for c in new["lists"] if len(new["lists"][c]) < k)
    summary = [
        f"{changed} of {len(rows)} customers would see a different personal top {k}.",
        f"Surplus-boosted items in the personal top {k}: {now['boosted']} now, "
        f"{new['boosted']} with the proposal.",
        f"{short} customers would have fewer than {k} personal items left (the service tops "
        "those up from popularity under the same rules).",
    ]
    return {
        "customers": len(rows),
        "per_rule": per_rule,
        "summary": summary,
        "note": f"Personal candidates (top {pool} per customer, as the service scores them) of "
        f"{len(rows)} sampled customers who allow personalization, scored now by the registered "
        "model; counts are items each rule removed.",
        "recall": served_recall(home),
    }


def _served_figures(served: Any) -> tuple[float, float | None] | None:
    """(served, offline) Recall@10 of a served-path evaluation (``ServedEvaluation.to_dict()``)."""
    if not isinstance(served, dict) or not isinstance(served.get("served"), dict):
        return None
    value = served["served"].get("recall@10")
    if value is None:
        return None
    offline = (served.get("offline") or {}).get("recall@10")
    return float(value), None if offline is None else float(offline)


def served_recall(home: HomeData) -> str:
    """Served Recall@10 of the newest served-path backtest in the home, or why there is none.

    ``shelfops backtest --served`` writes it to ``<home>/backtests/*/reports/backtest.json``
    (``recommendations.served``); without one, the registered recommender's own served replay
    of its validation customers (registry metadata ``served``, from ``shelfops train``) is shown,
    labelled as such.
    """
    import json

    from shelfops.registry import RECS_MODEL

    found = sorted(
        (home.settings.root / "backtests").glob("*/reports/backtest.json"),
        key=lambda p: p.stat().st_mtime,
    )
    for path in reversed(found):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        figures = _served_figures((result.get("recommendations") or {}).get("served"))
        if figures is not None:
            served, offline = figures
            return (
                f"Served Recall@10 on the last backtest (cutoff {result.get('cutoff')}, with the "
                f"rules in force then): {served:.4f}"
                + ("" if offline is None else f" (offline model {offline:.4f})")
                + ". It does not include this proposal: rerun `shelfops backtest --served` after "
                "applying it."
            )
    meta = home.model_metadata(RECS_MODEL) or {}
    figures = _served_figures(meta.get("served"))
    if figures is not None:
        served, offline = figures
        return (
            "No served-path backtest in this home (`shelfops backtest --served` writes one). The "
            f"registered recommender's served replay of its validation customers at training: "
            f"Recall@10 {served:.4f}"
            + ("" if offline is None else f" (offline model {offline:.4f})")
            + ", with the rules in force then."
        )
    return (
        "No served-path backtest in this home yet, so no served Recall@10 to show "
        "(`shelfops backtest --served` writes one)."
    )

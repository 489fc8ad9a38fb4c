"""The Rules page: view, validate, preview, apply and roll back the merchandising rules.

The form is built from :class:`shelfops.serving.rules.MerchRules` (one input per rule, with its
description), so a rule added there appears here without a change. Validation is the model's
own: a bad value gets its message next to the field and nothing is written. Applying and rolling
back go through :class:`shelfops.serving.rules_store.RulesStore` (versioned, audited); the
recommendation service picks the file up by itself.
"""

from __future__ import annotations

from typing import Any

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
        kind = "int" if info.annotation is int else "float" if info.annotation is float else "text"
        out.append(
            {
                "name": name,
                "description": info.description or "",
                "kind": kind,
                "bounds": ", ".join(f"{k} {v}" for k, v in bounds.items()),
            }
        )
    return out


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
                int(raw) if f["kind"] == "int" else float(raw) if f["kind"] == "float" else raw
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
        else (current.model_dump() if current is not None else MerchRules().model_dump())
    )
    return {
        "current": current,
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


def preview(home: HomeData, proposed: MerchRules, customers: int) -> dict[str, Any]:
    """What ``proposed`` would change on a sample of customers (filled in by the rules engine)."""
    return {"customers": 0, "note": "preview not available yet", "rules": proposed.model_dump()}

"""``shelfops privacy``: CCPA requests."""

from __future__ import annotations

from typing import Annotated

import typer

from shelfops.cli.common import console, settings_from

app = typer.Typer(help="Privacy requests (CCPA).", no_args_is_help=True)


@app.command("forget")
def forget_cmd(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Option(help="The customer to remove everywhere.")],
    actor: Annotated[
        str | None,
        typer.Option(help="Who asked, for the audit log (default: SHELFOPS_ACTOR or the OS user)."),
    ] = None,
) -> None:
    """Remove a customer from raw, clean, quarantine, feature and online data; audit it."""
    from shelfops.data.privacy import forget_customer
    from shelfops.features.store import FeatureRepo, registry_exists

    settings = settings_from(ctx)
    online = None
    if registry_exists(settings):
        online = FeatureRepo(settings).forget_customer
    result = forget_customer(
        settings.root,
        customer_id,
        settings.audit_log,
        actor=actor or settings.actor,
        online_delete=online,
    )
    total = sum(result.removed.values())
    console.print(f"[green]forgot[/] customer {customer_id}: {total:,} records removed")
    for where, count in result.removed.items():
        console.print(f"  {where}: {count:,}")
    console.print(f"audit record appended to {settings.audit_log}")

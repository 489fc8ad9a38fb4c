"""The console's web app: server-rendered pages over the home and the running services.

:func:`create_app` builds a FastAPI app; ``shelfops console`` serves it with uvicorn and tests
drive it in a real browser. Pages are rendered on the server with Jinja2 templates (autoescaped)
and inline SVG charts; the pages carry no scripts and load nothing from elsewhere, and the
Content-Security-Policy says so. Every change is a POST with the session's CSRF token, made by
an editor, and written to an audit log.

Routes: ``/insights``, ``/explorer``, ``/rules`` (+ ``/rules/preview``, ``/rules/apply``,
``/rules/rollback``), ``/forecasts``, ``/operations``, ``/share`` (+ ``/share/weekly.html``,
``/share/weekly.pdf``), ``/login``, ``/logout``, ``/healthz``.
"""

from __future__ import annotations

import getpass
import html
import secrets
import urllib.parse
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from shelfops.console import explorer as explorer_mod
from shelfops.console import rules_page
from shelfops.console.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Access,
    Session,
    csrf_ok,
)
from shelfops.console.forecasts import forecast_view
from shelfops.console.home import HomeData
from shelfops.console.insights import frame_rows, insights
from shelfops.console.operations import operations
from shelfops.console.share import (
    PdfUnavailable,
    chromium,
    summary_body,
    summary_pdf,
    weekly_summary,
)
from shelfops.settings import ConsoleSettings, MonitorSettings, Settings

TEMPLATES = Path(__file__).with_name("templates")
PAGES = (
    ("insights", "Insights"),
    ("explorer", "Recommendation explorer"),
    ("rules", "Rules"),
    ("forecasts", "Forecasts"),
    ("operations", "Operations"),
    ("share", "Share"),
)
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MAX_FORM_BYTES = 20_000


class FormError(ValueError):
    """A submitted form is unusable; the message is shown to the user."""


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["frame_rows"] = frame_rows
    return env


def create_app(
    settings: Settings,
    console: ConsoleSettings | None = None,
    monitor: MonitorSettings | None = None,
) -> FastAPI:
    """Build the console app for one home.

    Args:
        settings: The home and profile.
        console: Tokens, service URL and preview size (default: from the environment).
        monitor: Thresholds drawn on the Operations page (default: from the environment).

    Returns:
        The FastAPI app (serve it on loopback, or with both tokens set).
    """
    console = console or ConsoleSettings()
    monitor = monitor or MonitorSettings()
    home = HomeData(settings)
    access = Access(console.viewer_token, console.editor_token, settings.actor or getpass.getuser())
    env = _environment()
    app = FastAPI(title="ShelfOps console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.home = home
    app.state.access = access

    def session_of(request: Request) -> Session | None:
        return access.get(request.cookies.get(SESSION_COOKIE))

    def page(
        request: Request,
        session: Session,
        template: str,
        code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        body = env.get_template(template).render(
            pages=PAGES,
            active=template.removesuffix(".html"),
            session=session,
            open_mode=access.open,
            **context,
        )
        return HTMLResponse(body, status_code=code)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        """Sign-in, the loopback single-user session, and security headers on every answer."""
        path = request.url.path
        new_sid: str | None = None
        if path not in {"/login", "/healthz", "/favicon.ico"} and session_of(request) is None:
            if access.open:
                new_sid, session = access.start("editor", access.local_user)
                request.state.fresh_session = session
            elif request.method == "GET":
                target = urllib.parse.quote(str(request.url.path), safe="/")
                return RedirectResponse(f"/login?next={target}", status_code=303)
            else:
                return PlainTextResponse("sign in first", status_code=401)
        response: Response = await call_next(request)
        if new_sid:
            response.set_cookie(SESSION_COOKIE, new_sid, httponly=True, samesite="strict")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    def current(request: Request) -> Session:
        fresh = getattr(request.state, "fresh_session", None)
        session = fresh or session_of(request)
        assert session is not None  # the middleware let the request through
        return session

    async def change(request: Request) -> tuple[Session, dict[str, str]]:
        """The session and form of a change request: CSRF checked, editors only."""
        session = current(request)
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise FormError("the form is too large")
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
        if not csrf_ok(session, form.get("csrf")):
            raise PermissionError(
                "the form's security token is missing or stale: reload the page and try again"
            )
        if not session.can_edit:
            raise PermissionError(
                "viewers cannot change anything: sign in with the editor token to change rules"
            )
        return session, form

    def refused(request: Request, exc: Exception, status: int) -> HTMLResponse:
        session = session_of(request) or current(request)
        return page(
            request, session, "message.html", code=status, title="Not changed", message=str(exc)
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/")
    def index() -> RedirectResponse:
        return RedirectResponse("/insights", status_code=303)

    # -- sign in -------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/insights", error: str = "") -> HTMLResponse:
        nonce = secrets.token_urlsafe(24)
        body = env.get_template("login.html").render(
            pages=(),
            nonce=nonce,
            next=next if next.startswith("/") else "/insights",
            error=error,
            open_mode=access.open,
            session=None,
            active="login",
        )
        response = HTMLResponse(body)
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict")
        response.headers["Content-Security-Policy"] = CSP
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        body = (await request.body())[:MAX_FORM_BYTES].decode(errors="replace")
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body).items()}
        target = form.get("next", "/insights")
        if not target.startswith("/") or target.startswith("//"):
            target = "/insights"
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not secrets.compare_digest(nonce, form.get("nonce", "")):
            return RedirectResponse("/login?error=stale", status_code=303)
        role = None if access.open else access.role_for(form.get("token", ""))
        if role is None:
            return RedirectResponse("/login?error=token", status_code=303)
        name = (form.get("name") or "").strip()[:60] or role
        sid, _ = access.start(role, f"{name} ({role})")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict")
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session = current(request)
        body = (await request.body())[:MAX_FORM_BYTES].decode(errors="replace")
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body).items()}
        if not csrf_ok(session, form.get("csrf")):
            return PlainTextResponse("stale form", status_code=403)
        access.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # -- pages ---------------------------------------------------------------------------------
    @app.get("/insights", response_class=HTMLResponse)
    def insights_page(request: Request) -> HTMLResponse:
        return page(request, current(request), "insights.html", view=insights(home))

    @app.get("/explorer", response_class=HTMLResponse)
    def explorer_page(
        request: Request, customer_id: str = "", k: str = "10", shelf: str = "main"
    ) -> HTMLResponse:
        session = current(request)
        customer_id = customer_id.strip()
        error = None
        found = None
        try:
            size = int(k)
            if not 1 <= size <= 50:
                raise ValueError
        except ValueError:
            error, size = "k must be a whole number from 1 to 50", 10
        if shelf not in ("main", "discover"):
            error, shelf = "the list is main or discover", "main"
        if customer_id and error is None:
            if len(customer_id) > 64:
                error = "a customer id is at most 64 characters"
            else:
                url = explorer_mod.recs_service_url(home, console.recs_url)
                found = explorer_mod.explore(
                    home,
                    customer_id,
                    url,
                    size,
                    console.request_timeout_s,
                    discover=shelf == "discover",
                )
        return page(
            request,
            session,
            "explorer.html",
            code=400 if error else 200,
            customer_id=customer_id,
            k=size,
            shelf=shelf,
            found=found,
            error=error,
            examples=explorer_mod.example_customers(home),
        )

    @app.get("/rules", response_class=HTMLResponse)
    def rules_view(request: Request) -> HTMLResponse:
        return page(request, current(request), "rules.html", **rules_page.context(home, settings))

    async def rules_form(request: Request) -> tuple[Session, dict[str, Any]] | HTMLResponse:
        """A submitted rules form, checked: the page to answer with, or the valid form."""
        try:
            session, form = await change(request)
        except PermissionError as exc:
            return refused(request, exc, 403)
        except FormError as exc:
            return refused(request, exc, 400)
        ctx = rules_page.context(home, settings, form=form)
        if ctx["form_errors"]:
            return page(request, session, "rules.html", code=400, **ctx)
        return session, ctx

    @app.post("/rules/preview", response_class=HTMLResponse)
    async def rules_preview(request: Request) -> HTMLResponse:
        checked = await rules_form(request)
        if isinstance(checked, HTMLResponse):
            return checked
        session, ctx = checked
        ctx["preview"] = rules_page.preview(home, ctx["proposed"], console.preview_customers)
        return page(request, session, "rules.html", **ctx)

    @app.post("/rules/apply", response_class=HTMLResponse)
    async def rules_apply(request: Request) -> Response:
        checked = await rules_form(request)
        if isinstance(checked, HTMLResponse):
            return checked
        session, ctx = checked
        version = rules_page.apply(home, ctx["proposed"], session.actor, ctx["note"])
        return RedirectResponse(f"/rules?applied={version.number}", status_code=303)

    @app.post("/rules/rollback", response_class=HTMLResponse)
    async def rules_rollback(request: Request) -> Response:
        try:
            session, form = await change(request)
            number = int(form.get("version", ""))
            version = rules_page.rollback(home, number, session.actor, form.get("note", ""))
        except PermissionError as exc:
            return refused(request, exc, 403)
        except (FormError, KeyError, ValueError) as exc:
            message = str(exc).strip("'") if not isinstance(exc, ValueError) or str(exc) else ""
            return refused(request, FormError(message or "choose a version to roll back to"), 400)
        return RedirectResponse(f"/rules?applied={version.number}", status_code=303)

    @app.get("/forecasts", response_class=HTMLResponse)
    def forecasts_page(request: Request, product: str = "", category: str = "") -> HTMLResponse:
        view = forecast_view(home, product or None, category or None)
        return page(request, current(request), "forecasts.html", view=view)

    @app.get("/operations", response_class=HTMLResponse)
    def operations_page(request: Request) -> HTMLResponse:
        return page(request, current(request), "operations.html", view=operations(home, monitor))

    @app.get("/share", response_class=HTMLResponse)
    def share_page(request: Request) -> HTMLResponse:
        return page(
            request,
            current(request),
            "share.html",
            pdf=chromium() is not None,
            body=summary_body(home),
        )

    @app.get("/share/weekly.html")
    def share_html() -> HTMLResponse:
        response = HTMLResponse(weekly_summary(home))
        response.headers["Content-Disposition"] = 'attachment; filename="shelfops-weekly.html"'
        return response

    @app.get("/share/weekly.pdf")
    def share_pdf(request: Request) -> Response:
        try:
            pdf = summary_pdf(weekly_summary(home))
        except PdfUnavailable as exc:
            return page(
                request,
                current(request),
                "message.html",
                code=503,
                title="No PDF",
                message=html.unescape(str(exc)),
            )
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": 'attachment; filename="shelfops-weekly.pdf"'},
        )

    return app

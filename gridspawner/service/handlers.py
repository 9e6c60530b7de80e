"""The service's pages and REST API. Every request is authenticated through the hub
(`HubOAuthenticated`: the hub's login cookie via OAuth for pages, a token for the API); a
user sees their own records only, a holder of ``custom:gridspawner:usage:admin`` everyone's.
All handlers only read (GET): no form posts, no state changes."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from ..usage import periods
from ..usage.form_panel import panel_view
from ..usage.pricing import format_money
from ..usage.queries import DIMENSIONS, Filters
from .context import ServiceContext
from .chart import Bar, bar_chart
from .exports import records_csv, summary_csv
from .params import ParamErrors, Query, parse_query, series_spans
from .settings import ADMIN_SCOPE
from .views import hours, record_row

#: CSV exports read the records in chunks of this many rows
CSV_CHUNK = 5000
TIME_DIMENSIONS = ("day", "week", "month")


class Base(HubOAuthenticated, web.RequestHandler):
    def initialize(self, context: ServiceContext) -> None:
        self.ctx = context

    async def prepare(self) -> None:
        # resolve the user without blocking the loop; `current_user` then reads this answer
        await self.hub_auth.get_user(self, sync=False)

    @property
    def user_name(self) -> str:
        return self.current_user["name"]

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in set(self.current_user.get("scopes") or ())

    def arguments(self) -> dict[str, list[str]]:
        return {k: [v.decode("utf-8", "replace") for v in vals] for k, vals in self.request.arguments.items()}

    def query(self, **kw: Any) -> Query:
        """The request's parameters (ParamErrors: the pages show them above the page)."""
        return parse_query(self.arguments(), time.time(), self.ctx.config.timezone, **kw)

    def api_query(self, **kw: Any) -> Query:
        """The request's parameters; a bad one is a 400 naming it."""
        try:
            return self.query(**kw)
        except ParamErrors as e:
            self._param_errors = e.errors
            raise web.HTTPError(400, str(e)) from None

    def page(self, template: str, script_hashes: tuple[str, ...] = (), **values: Any) -> None:
        """Render a page; ``script_hashes``: CSP hashes of inline scripts it may run."""
        self.set_header("Content-Type", "text/html; charset=utf-8")
        scripts = f"; script-src 'self' {' '.join(script_hashes)}" if script_hashes else ""
        self.set_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                                   f"img-src 'self' data:; frame-ancestors 'self'{scripts}")
        html = self.ctx.templates.get_template(template).render(
            prefix=self.ctx.prefix, hub_prefix=self.ctx.hub_prefix, user=self.user_name, is_admin=self.is_admin,
            currency=self.ctx.config.prices.currency, money=self.money, hours=hours,
            runs_enabled=self.ctx.runs is not None, **values)
        self.finish(html)

    def money(self, amount: float | None) -> str:
        return format_money(amount or 0.0, self.ctx.config.prices.currency) if self.ctx.config.prices.configured else ""

    def csv(self, text: str, filename: str) -> None:
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.finish(text)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        self.set_status(status_code)
        if self.request.path.startswith(f"{self.ctx.prefix}api/"):
            body: dict[str, Any] = {"status": status_code, "message": message}
            if getattr(self, "_param_errors", None):
                body["errors"] = self._param_errors
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body))
        else:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(f"{status_code}: {message}")


def choose_period(span: periods.Span) -> str:
    """The chart's bars: days for up to two months, weeks up to a year, else months."""
    days = (span.end - span.start) / 86400
    return "day" if days <= 62 else ("week" if days <= 370 else "month")


async def chart_for(ctx: ServiceContext, query: Query, filters: Filters, now: float, title: str):
    span = query.span
    if query.period == "all":  # from the first record on
        first = await ctx.usage.store.first_start(filters)
        span = periods.Span(first if first is not None else now - 30 * 86400, now + 1, "all")
    period = choose_period(span)
    spans = series_spans(Query(span, query.period, query.by, filters), now, ctx.config.timezone, period, limit=120)
    buckets = await ctx.usage.store.series(spans, now, filters)
    return bar_chart([Bar(b.label, b.gpu_hours) for b in buckets], title=title), period, buckets


class UserPage(Base):
    """``/services/gridspawner/``: the user's own usage (history, GPU-hours and cost this
    period, quota standing, a chart per day)."""

    @web.authenticated
    async def get(self) -> None:
        now, cfg, usage = time.time(), self.ctx.config, self.ctx.usage
        errors: dict[str, str] = {}
        try:
            query = self.query(default_by="day", default_limit=50)
        except ParamErrors as e:
            errors = e.errors
            query = parse_query({}, now, cfg.timezone, default_by="day")
        mine = Filters(users=(self.user_name,))
        totals = await usage.store.totals(query.span, now, mine)
        count = totals["records"]
        rows = await usage.store.history(mine, query.span, query.limit, (query.page - 1) * query.limit)
        chart, chart_period, _ = await chart_for(self.ctx, query, mine, now, "GPU-hours per period")
        groups = list(self.current_user.get("groups") or ())
        lines: tuple[str, ...] = ()
        if cfg.quotas.configured:
            standing, group_standing = await usage.standing(self.user_name, groups, now)
            limits, pools = usage.limits(self.user_name, groups)
            lines = panel_view(limits, standing, pools, group_standing, cfg.prices, (), {}).lines
        self.page(
            "user.html.j2", query=query, errors=errors, totals=totals, count=count,
            rows=[record_row(r, now, cfg.timezone, viewer=self.user_name) for r in rows],
            pages=max(1, math.ceil(count / query.limit)), chart=chart, chart_period=chart_period,
            quota_lines=lines, csv_url=f"{self.ctx.prefix}api/records?format=csv&period={query.period}"
            if query.period != "custom" else f"{self.ctx.prefix}api/records?format=csv&{self.request.query}",
        )


class AdminPage(Base):
    """``/services/gridspawner/admin``: usage per user, group, backend, GPU model, host or
    period, with filters and CSV exports (admin scope only)."""

    @web.authenticated
    async def get(self) -> None:
        if not self.is_admin:
            raise web.HTTPError(403, f"this page needs the {ADMIN_SCOPE} scope")
        now, cfg, store = time.time(), self.ctx.config, self.ctx.usage.store
        errors: dict[str, str] = {}
        try:
            query = self.query(default_by="user", default_limit=50)
        except ParamErrors as e:
            errors = e.errors
            query = parse_query({}, now, cfg.timezone)
        filters = query.filters

        async def sums() -> tuple[list[dict], dict]:
            if query.by in TIME_DIMENSIONS:
                spans = series_spans(query, now, cfg.timezone, query.by)
                summary = [{"key": b.label, "records": None, "hours": b.hours, "gpu_hours": b.gpu_hours, "cost": b.cost}
                           for b in await store.series(spans, now, filters)]
            else:
                summary = await store.summary(query.by, query.span, now, filters)
            if query.by in TIME_DIMENSIONS or query.by == "group":
                return summary, await store.totals(query.span, now, filters)
            # each record in exactly one row: the sums are the totals (one pass less over the records)
            return summary, {"records": sum(r["records"] for r in summary),
                             **{k: sum(r[k] or 0.0 for r in summary) for k in ("hours", "gpu_hours", "cost")}}

        # independent reads, at once (the store's threads; SQLite's readers do not wait for each other)
        (summary, totals), rows, (chart, chart_period, _), choices = await asyncio.gather(
            sums(),
            store.history(filters, query.span, query.limit, (query.page - 1) * query.limit),
            chart_for(self.ctx, query, filters, now, "GPU-hours per period, all filtered records"),
            store.choices(),
        )
        count = totals["records"]  # the records that overlap the span: what the history pages through
        self.page(
            "admin.html.j2", query=query, errors=errors, summary=summary, totals=totals, count=count,
            rows=[record_row(r, now, cfg.timezone) for r in rows], pages=max(1, math.ceil(count / query.limit)),
            chart=chart, chart_period=chart_period, choices=choices, dimensions=DIMENSIONS,
            periods=("today", "week", "month", "last-month", "year", "all"),
            filter_query=self.request.query,
        )


class ApiBase(Base):
    def get_login_url(self) -> str:
        raise web.HTTPError(403, "a token or a hub login is needed")


class RecordsAPI(ApiBase):
    """``GET api/records``: records (JSON, newest first, paged; or ``format=csv``: all of
    them). A user gets their own; the admin scope may filter by any user or none."""

    @web.authenticated
    async def get(self) -> None:
        now, cfg, store = time.time(), self.ctx.config, self.ctx.usage.store
        query = self.api_query(default_limit=100)
        filters = query.filters
        if not self.is_admin:
            if filters.users and filters.users != (self.user_name,):
                raise web.HTTPError(403, "you may read your own records only")
            filters = Filters(users=(self.user_name,), group=filters.group, backend=filters.backend,
                              gpu_model=filters.gpu_model, kind=filters.kind)
        if query.format == "csv":
            rows, offset = [], 0
            while True:
                chunk = await store.history(filters, query.span, CSV_CHUNK, offset)
                rows.extend(record_row(r, now, cfg.timezone) for r in chunk)
                if len(chunk) < CSV_CHUNK:
                    break
                offset += CSV_CHUNK
            self.csv(records_csv(rows), f"gpu-usage-records-{query.span.label}.csv".replace(" ", ""))
            return
        rows = await store.history(filters, query.span, query.limit, (query.page - 1) * query.limit)
        self.finish({"period": {"start": query.span.start, "end": query.span.end, "label": query.span.label},
                     "total": await store.count(filters, query.span), "page": query.page,
                     "records": [record_row(r, now, cfg.timezone) for r in rows]})


class SummaryAPI(ApiBase):
    """``GET api/summary?by=user|group|backend|gpu_model|host|day|week|month``: sums of
    records, hours, GPU-hours and cost (admin scope only); JSON or ``format=csv``."""

    @web.authenticated
    async def get(self) -> None:
        if not self.is_admin:
            raise web.HTTPError(403, f"the summary needs the {ADMIN_SCOPE} scope")
        now, cfg, store = time.time(), self.ctx.config, self.ctx.usage.store
        query = self.api_query(default_by="user")
        if query.by in TIME_DIMENSIONS:
            spans = series_spans(query, now, cfg.timezone, query.by)
            rows = [{"key": b.label, "records": None, "hours": b.hours, "gpu_hours": b.gpu_hours, "cost": b.cost}
                    for b in await store.series(spans, now, query.filters)]
        else:
            rows = await store.summary(query.by, query.span, now, query.filters)
        if query.format == "csv":
            self.csv(summary_csv(rows, cfg.prices.currency), f"gpu-usage-by-{query.by}-{query.span.label}.csv".replace(" ", ""))
            return
        self.finish({"by": query.by, "period": {"start": query.span.start, "end": query.span.end,
                                                 "label": query.span.label},
                     "currency": cfg.prices.currency, "rows": rows})

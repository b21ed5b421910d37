"""Liveness, readiness and Prometheus metrics; these need no API key."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import AppContext, Context
from api.status_schemas import Health
from api.strict_route import StrictRoute
from scheduler.store.migrate import schema_is_current

router = APIRouter(tags=["health"], route_class=StrictRoute)


@router.get("/healthz")
def healthz() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready"}},
)
def readyz(ctx: Context) -> JSONResponse:
    """Ready when the database answers, its schema is at head, and Redis (if set) answers."""
    checks = _readiness(ctx)
    failed = [name for name, result in checks.items() if result != "ok"]
    if failed:
        body = Health(status="unavailable", checks=checks, detail=f"not ready: {', '.join(failed)}")
        return JSONResponse(body.model_dump(), status_code=503)
    return JSONResponse(Health(status="ok", checks=checks).model_dump())


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics(ctx: Context) -> Response:
    """Prometheus text exposition; every name starts with ``sundial_``."""
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _readiness(ctx: AppContext) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["schema"] = "ok" if schema_is_current(ctx.engine) else "not at head"
    except SQLAlchemyError as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        checks.setdefault("schema", "unknown")
    if ctx.redis is not None:
        try:
            ctx.redis.ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
    return checks

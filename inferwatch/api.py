"""The HTTP API: health and readiness, models, windows and their drift results, alerts,
silences and reference uploads, with an OpenAPI document at ``/openapi.json`` (browsable at
``/docs``).

Reads need no credentials. Writes (``POST``, ``PUT``, ``DELETE``) need
``Authorization: Bearer <api.token>``: a missing or malformed header is answered 401 with
``WWW-Authenticate: Bearer realm="inferwatch"``, a wrong token 401 with
``error="invalid_token"`` (RFC 6750). Request bodies are limited while they stream in: a
``Content-Length`` above the limit is refused before anything is read, and a body that grows
past it (chunked) is refused as soon as it does; both with 413. Reference uploads have their
own, larger limit (``api.max_upload_bytes``; ``api.max_body_bytes`` for everything else).

Errors are JSON objects ``{"detail": ...}``: a text for 400, 401, 404, 413, 415 and 503, and
FastAPI's list of validation errors for 422 (bad query or path parameters, bad JSON bodies);
non-finite numbers a client sent (``NaN``, ``Infinity``, ``1e309``) appear in those errors as
the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``. Every ``/api/v1`` route answers 503
when the database cannot be reached.

Model names may contain ``/`` (``meta-llama/Llama-3-8B``), sent as is or as ``%2F``. The routes
ending in ``/windows`` and ``/reference`` win over ``/models/{model}``: ``GET
/api/v1/models/x/windows`` lists the windows of ``x``, so a model named ``x/windows`` is shown
by ``GET /api/v1/models`` only (its windows are at ``/api/v1/models/x/windows/windows``).

All times are UTC epoch milliseconds (``*_ms``); query parameters that take a time accept
epoch milliseconds or an RFC 3339 date-time with an offset (``2024-01-05T00:00:00Z``).
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import orjson
import sqlalchemy.exc
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.convertors import Convertor, register_url_convertor
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from alerting.events import rfc3339
from alerting.silences import Silence as ActiveSilence
from alerting.silences import MAX_SILENCE_SECONDS, parse_matcher
from inferwatch.config import Settings
from inferwatch import times
from inferwatch.store import Store, now_ms

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
# the one route whose body is a training data file: api.max_upload_bytes instead of api.max_body_bytes
_UPLOAD_PATH = re.compile(r"^/api/v1/models/.+/reference$", re.DOTALL)  # names may hold "/" and line breaks

_MIN_MS, _MAX_MS = times.MIN_MS, times.MAX_MS
_MAX_ID = 2**63 - 1  # BIGINT

# upload media types -> format (the CLI reads CSV and Parquet by file suffix)
UPLOAD_TYPES = {
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
}

ALERT_STATES = ("inactive", "pending", "firing", "resolved")


# --- parameter types ----------------------------------------------------------------------------------------------

def parse_time(value: Any) -> int:
    """A time given as epoch milliseconds (an integer, or its digits) or as an RFC 3339
    date-time with an offset, as UTC epoch milliseconds.

    Raises:
        ValueError: neither form, no UTC offset, or outside the years 1-9999.
    """
    if isinstance(value, bool):
        raise ValueError("expected epoch milliseconds or an RFC 3339 date-time")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        ms = int(value)
    elif isinstance(value, str):
        ms = times.parse_time(value, durations=False, require_offset=True)
    else:
        raise ValueError("expected epoch milliseconds or an RFC 3339 date-time")
    if not _MIN_MS <= ms <= _MAX_MS:
        raise ValueError(f"{value!r} is outside the years 1 to 9999")
    return ms


Timestamp = Annotated[int, BeforeValidator(parse_time), WithJsonSchema({
    "anyOf": [{"type": "integer", "minimum": _MIN_MS, "maximum": _MAX_MS},
              {"type": "string", "format": "date-time"}],
    "description": "UTC epoch milliseconds, or an RFC 3339 date-time with an offset"})]

# text that reaches the database: no NUL (PostgreSQL refuses it in text)
_TEXT = r"^[^\x00]*$"
_MATCHER = r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*(=~|!~|!=|=)[^\x00]*$"  # alerting.silences.parse_matcher's form


class _NameConvertor(Convertor[str]):
    """``{model:name}`` in a route: any text, "/" and line breaks included (Starlette's ``path``
    stops at a line break). uvicorn decodes ``%2F`` before routing, so both spellings arrive as "/"."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("name", _NameConvertor())

ModelName = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[^\x00]+$",
                                description="model name as in the prediction records")]


# --- response and request bodies ----------------------------------------------------------------------------------

class Problem(BaseModel):
    """An error: what went wrong and, where it helps, how to fix it."""

    detail: str


class Health(BaseModel):
    """The process is alive."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether this process can serve: the database answers and, in ``inferwatch run``, the
    Kafka consumer is consuming (not stopped, not paused by an outage)."""

    ready: bool
    store: bool = Field(description="the database answered a query")
    consumer: bool | None = Field(description="the consumer is running; null when this process runs none "
                                              "(inferwatch api)")


class Window(BaseModel):
    """A closed window and its dataset-level drift verdict."""

    id: int
    model: str
    model_version: str
    window_start_ms: int
    window_end_ms: int
    start: str = Field(description="window_start_ms as RFC 3339")
    end: str = Field(description="window_end_ms as RFC 3339")
    segment: int = Field(description="0, or the part of a window split by a reference change or a late close")
    record_count: int
    close_reason: str
    closed_at_ms: int
    status: str = Field(description="ok, or why no drift was computed (e.g. no_reference)")
    n_columns: int = Field(description="columns tested")
    n_drifted: int = Field(description="features that drifted")
    drift_share: float | None = Field(description="share of tested features that drifted, 0-1")
    dataset_drifted: bool | None = Field(description="the dataset verdict; null without one")


class DriftResult(BaseModel):
    """The drift test of one column of a window against the reference. Numbers that are not
    finite (an infinite -log10 p) are null."""

    column_name: str = Field(description="features.<name> or predictions.<name>")
    role: str
    kind: str = Field(description="numeric or categorical")
    method: str = Field(description="the test, e.g. ks, chi2")
    status: str
    statistic: float | None
    p_value: float | None
    p_value_adjusted: float | None
    neg_log10_p: float | None
    drifted: bool | None
    threshold: float | None
    effect_size: float | None
    effect_size_name: str | None
    psi: float | None
    js_distance: float | None
    wasserstein: float | None
    wasserstein_normalised: float | None
    hellinger: float | None
    total_variation: float | None
    n_reference: int
    n_current: int
    missing_share: float | None
    reference_missing_share: float | None
    missing_p_value: float | None
    missing_drifted: bool | None
    low_confidence: bool


class WindowDetail(Window):
    """A closed window with the drift result of every column tested."""

    drift_results: list[DriftResult]


class ReferenceInfo(BaseModel):
    """A stored reference profile (without the profile)."""

    model_version: str = Field(description="the version it applies to; '*': every version without its own")
    source: str
    n_rows: int
    created_at_ms: int


class ModelVersion(BaseModel):
    """A version of a model seen in the prediction logs."""

    model_version: str
    reference: ReferenceInfo | None = Field(description="the reference its windows are compared with")
    last_window: Window | None = Field(description="its latest closed window")


class ModelInfo(BaseModel):
    """A model: its versions and its stored references."""

    model: str
    versions: list[ModelVersion]
    references: list[ReferenceInfo]


class Alert(BaseModel):
    """An alert instance (one rule, one label set) and its lifecycle state."""

    fingerprint: str = Field(description="the dedup key (the fingerprint Alertmanager gives these labels)")
    alertname: str
    model: str
    model_version: str
    state: Literal["inactive", "pending", "firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    fired_at_ms: int | None
    resolved_at_ms: int | None
    notified: bool = Field(description="the current firing was sent to the receivers")
    silenced_by: list[int] = Field(description="ids of the active silences that mute it")


class SilenceCreate(BaseModel):
    """A new silence: its matchers, how long, who and why."""

    model_config = ConfigDict(extra="forbid")

    matchers: list[Annotated[str, Field(min_length=1, max_length=1024, pattern=_MATCHER)]] = Field(
        min_length=1, max_length=64, description="name=value, name!=value, name=~regex, name!~regex; all must match")
    # strict: a JSON number, not "60" or true; finite: NaN and Infinity (which Python's JSON reads) are refused
    duration_seconds: float = Field(ge=1, le=MAX_SILENCE_SECONDS, strict=True, allow_inf_nan=False,
                                    description="how long it lasts (1 s to 366 days)")
    starts_at: Timestamp | None = Field(None, description="when it starts (default: now)")
    comment: str = Field(min_length=1, max_length=2000, pattern=_TEXT)
    created_by: str = Field("api", min_length=1, max_length=256, pattern=_TEXT)

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, v: list[str]) -> list[str]:
        for m in v:
            parse_matcher(m)  # ValueError names the bad matcher
        return v

    @field_validator("comment")
    @classmethod
    def _why(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("say why (shown in silence list)")
        return v


class Silence(BaseModel):
    """A stored silence."""

    id: int
    matchers: list[str]
    starts_at_ms: int
    ends_at_ms: int
    created_by: str
    comment: str
    created_at_ms: int
    state: Literal["pending", "active", "expired"]


class ReferenceStored(BaseModel):
    """The reference profile built from an upload."""

    model: str
    model_version: str
    source: str
    n_rows: int
    numeric_columns: list[str]
    categorical_columns: list[str]


# --- helpers ----------------------------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """A stored value as JSON can hold it: numpy scalars as Python ones, NaN and infinities as None."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _window(row: dict) -> Window:
    r = {k: _plain(v) for k, v in row.items()}
    r["dataset_drifted"] = None if r["dataset_drifted"] is None else bool(r["dataset_drifted"])
    return Window(**r, start=rfc3339(int(r["window_start_ms"])), end=rfc3339(int(r["window_end_ms"])))


def _silence(row: dict, now: int) -> Silence:
    state = "active" if row["starts_at_ms"] <= now < row["ends_at_ms"] else (
        "pending" if now < row["starts_at_ms"] else "expired")
    return Silence(**{k: row[k] for k in ("id", "matchers", "starts_at_ms", "ends_at_ms", "created_by", "comment",
                                         "created_at_ms")}, state=state)


def _finite(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, scalars) with every non-finite float replaced by the
    way JSON extensions write it (``"NaN"``, ``"Infinity"``, ``"-Infinity"``): strict JSON has no
    such numbers, and a client may have sent them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses entries of the error codes a route answers with."""
    text = {400: "The body cannot be used", 401: "No or a wrong bearer token", 404: "Not found",
            409: "Conflicts with the stored data", 413: "The body is too large", 415: "Unsupported content type",
            503: "Not ready"}
    return {c: {"model": Problem, "description": text[c]} for c in codes}


class _ApiRoute(APIRoute):
    """A route that documents 503 when it is under ``/api/v1``: every one of those reads or
    writes the database, and an unreachable database is answered 503."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, responses: dict | None = None,
                 **kwargs: Any) -> None:
        if path.startswith(PREFIX + "/"):
            responses = {**_problems(503), **(responses or {})}
        super().__init__(path, endpoint, responses=responses, **kwargs)


class BodyLimit:
    """ASGI middleware bounding request bodies while they arrive: 413 for a ``Content-Length``
    above the limit (nothing read), or as soon as the bytes received pass it.

    Args:
        app: the wrapped ASGI app.
        max_body: limit in bytes for every route but the reference upload.
        max_upload: limit in bytes for ``/api/v1/models/{model}/reference``.
    """

    def __init__(self, app, max_body: int, max_upload: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = _UPLOAD_PATH.match(scope["path"]) is not None
        limit = self.max_upload if upload else self.max_body
        detail = f"request body larger than {limit} bytes (api.max_{'upload' if upload else 'body'}_bytes)"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            await JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})(
                scope, receive, send)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # handled by the app's exception middleware: a 413 response
                    raise HTTPException(413, detail, headers={"Connection": "close"})
            return message

        await self.app(scope, limited_receive, send)


# --- the app ----------------------------------------------------------------------------------------------------------

def create_app(settings: Settings, store: Store, *, ready: Callable[[], bool] | None = None) -> FastAPI:
    """The API over ``store``.

    Args:
        settings: the configuration; ``api.token`` guards the write endpoints, ``api.max_body_bytes``
            and ``api.max_upload_bytes`` bound request bodies, ``drift.categorical`` and
            ``reference`` shape uploaded references as in ``inferwatch reference set``.
        store: an opened store (schema created); not closed by the app.
        ready: whether the consumer of this process is running (``/readyz``); None when the
            process runs no consumer.

    Raises:
        ValueError: ``api.token`` is not set (the message names the key).
    """
    if settings.api.token is None:
        raise ValueError("api.token: the API needs a bearer token for its write endpoints; set api.token to "
                         "{env: NAME} or {file: PATH}")
    token = settings.api.token.get().encode()
    app = FastAPI(title="inferwatch", version="1", description=__doc__.split("\n\n", 1)[1],
                  openapi_tags=[{"name": n} for n in ("health", "models", "windows", "alerts", "silences")])
    app.router.route_class = _ApiRoute  # before any route is added
    app.add_middleware(BodyLimit, max_body=settings.api.max_body_bytes, max_upload=settings.api.max_upload_bytes)
    bearer = HTTPBearer(auto_error=False, description="api.token")

    def writer(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if creds is None:
            raise HTTPException(401, "write endpoints need Authorization: Bearer <api.token>",
                                headers={"WWW-Authenticate": 'Bearer realm="inferwatch"'})
        if not hmac.compare_digest(creds.credentials.encode(), token):
            raise HTTPException(401, "wrong bearer token", headers={
                "WWW-Authenticate": 'Bearer realm="inferwatch", error="invalid_token"'})

    @app.exception_handler(sqlalchemy.exc.OperationalError)
    async def _database_down(_request: Request, exc: sqlalchemy.exc.OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", str(exc.orig).strip().splitlines()[0] if exc.orig else exc)
        return JSONResponse({"detail": "the database is unavailable; try again"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's 422, but a NaN or Infinity the client sent cannot be written back as a JSON number
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)

    def known_models() -> dict[str, tuple[set[str], list[dict]]]:
        """model -> (versions seen, references)."""
        with store.engine.connect() as conn:
            pairs = store.tracked_models(conn)
        out: dict[str, tuple[set[str], list[dict]]] = {}
        for m, v in pairs:
            out.setdefault(m, (set(), []))[0].add(v)
        for ref in store.list_references():
            out.setdefault(ref["model"], (set(), []))[1].append(ref)
        return out

    def model_info(model: str, versions: set[str], refs: list[dict], last: dict) -> ModelInfo:
        by_version = {r["model_version"]: ReferenceInfo(**{k: r[k] for k in ReferenceInfo.model_fields})
                      for r in refs}
        return ModelInfo(model=model, references=list(by_version.values()), versions=[
            ModelVersion(model_version=v, reference=by_version.get(v, by_version.get("*")),
                         last_window=_window(last[(model, v)]) if (model, v) in last else None)
            for v in sorted(versions)])

    # --- health
    @app.get("/healthz", tags=["health"], response_model=Health)
    def healthz() -> Health:
        """The process is alive (no dependency is checked)."""
        return Health()

    @app.get("/readyz", tags=["health"], response_model=Readiness, responses={503: {"model": Readiness,
                                                                                  "description": "Not ready"}})
    def readyz() -> JSONResponse:
        """Ready: the database answers and the consumer (if this process runs one) is running; 503 otherwise."""
        try:
            with store.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            store_ok = True
        except sqlalchemy.exc.SQLAlchemyError:
            store_ok = False
        consumer = None if ready is None else bool(ready())
        body = Readiness(ready=store_ok and consumer is not False, store=store_ok, consumer=consumer)
        return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)

    # --- models and windows
    @app.get(f"{PREFIX}/models", tags=["models"], response_model=list[ModelInfo])
    def list_models() -> list[ModelInfo]:
        """Every model seen in the logs or given a reference: its versions, the reference each
        is compared with, and each version's latest closed window."""
        last = store.last_windows()
        return [model_info(m, vs, refs, last) for m, (vs, refs) in sorted(known_models().items())]

    @app.get(f"{PREFIX}/models/{{model:name}}/windows", tags=["windows"], response_model=list[Window],
             responses=_problems(404))
    def list_windows(request: Request, model: ModelName,
                     model_version: Annotated[str | None, Query(max_length=256, pattern=_TEXT)] = None,
                     since: Annotated[Timestamp | None, Query(description="windows starting at or after this")] = None,
                     until: Annotated[Timestamp | None, Query(description="windows starting before this")] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[Window]:
        """Closed windows of a model, newest first (by start time), at most ``limit``; page back
        with ``until`` set to the oldest start seen. ``since`` after ``until`` is 422."""
        if since is not None and until is not None and since > until:
            query = request.query_params
            raise RequestValidationError([
                {"type": "value_error", "loc": ("query", "since"), "input": query.get("since"),
                 "msg": f"since ({rfc3339(since)}) is after until ({rfc3339(until)})"},
                {"type": "value_error", "loc": ("query", "until"), "input": query.get("until"),
                 "msg": f"until ({rfc3339(until)}) is before since ({rfc3339(since)})"}])
        rows = store.latest_windows(model, model_version, since, until, limit)
        if not rows and model not in known_models():
            raise HTTPException(404, f"no model {model!r} (see GET {PREFIX}/models)")
        return [_window(r) for r in rows]

    @app.get(f"{PREFIX}/models/{{model:name}}", tags=["models"], response_model=ModelInfo, responses=_problems(404))
    def get_model(model: ModelName) -> ModelInfo:
        """One model (404 if it was never seen and has no reference). Declared after the
        windows listing, which wins for a path ending in ``/windows``."""
        found = known_models().get(model)
        if found is None:
            raise HTTPException(404, f"no model {model!r} (see GET {PREFIX}/models)")
        return model_info(model, *found, store.last_windows())

    @app.get(f"{PREFIX}/windows/{{window_id}}", tags=["windows"], response_model=WindowDetail,
             responses=_problems(404))
    def get_window(window_id: Annotated[int, Path(ge=1, le=_MAX_ID)]) -> WindowDetail:
        """A closed window with the drift result of every column."""
        with store.engine.connect() as conn:
            found = store.window_with_results(conn, window_id)
        if found is None:
            raise HTTPException(404, f"no closed window {window_id}")
        row, results = found
        drift = []
        for r in results:
            r = {k: _plain(v) for k, v in r.items()}
            for flag in ("drifted", "missing_drifted"):
                r[flag] = None if r[flag] is None else bool(r[flag])
            r["low_confidence"] = bool(r["low_confidence"])
            drift.append(DriftResult(**{k: r[k] for k in DriftResult.model_fields}))
        return WindowDetail(**_window({k: v for k, v in row.items() if k != "profile"}).model_dump(),
                            drift_results=drift)

    # --- alerts and silences
    @app.get(f"{PREFIX}/alerts", tags=["alerts"], response_model=list[Alert])
    def list_alerts(state: Annotated[list[Literal["inactive", "pending", "firing", "resolved"]] | None,
                                     Query(description="repeat for several; default pending and firing")] = None,
                    model: Annotated[str | None, Query(max_length=256, pattern=_TEXT)] = None) -> list[Alert]:
        """Alert instances with their state, labels, annotations and the silences muting them."""
        states = tuple(state) if state else ("pending", "firing")
        now = now_ms()
        active = [ActiveSilence(s["id"], tuple(parse_matcher(m) for m in s["matchers"]), s["starts_at_ms"],
                                s["ends_at_ms"]) for s in store.list_silences(active_at_ms=now)]
        out = []
        for row in store.alert_instances_in(None, states):
            lb, st = row["labels"], row["state"]
            if model is not None and lb.get("model") != model:
                continue
            out.append(Alert(fingerprint=row["fingerprint"], alertname=lb["alertname"], model=lb["model"],
                             model_version=lb["model_version"], state=st["state"], labels=lb,
                             annotations=row["annotations"], fired_at_ms=st.get("fired_at_ms"),
                             resolved_at_ms=st.get("resolved_at_ms"), notified=bool(st.get("notified")),
                             silenced_by=[s.id for s in active if s.mutes(lb, now)]))
        return out

    @app.get(f"{PREFIX}/silences", tags=["silences"], response_model=list[Silence])
    def list_silences(include_expired: bool = False) -> list[Silence]:
        """Silences, newest first: active and pending ones, or all with ``include_expired``."""
        now = now_ms()
        return [_silence(s, now) for s in store.list_silences(active_at_ms=None if include_expired else now)]

    @app.post(f"{PREFIX}/silences", tags=["silences"], response_model=Silence, status_code=201,
              dependencies=[Depends(writer)], responses=_problems(400, 401, 413))
    def create_silence(body: SilenceCreate) -> Silence:
        """Mute the notifications of matching alerts for a while (their states still change)."""
        now = now_ms()
        start = now if body.starts_at is None else body.starts_at
        sid = store.add_silence(body.matchers, start, start + int(body.duration_seconds * 1000), body.created_by,
                                body.comment)
        return next(_silence(s, now) for s in store.list_silences() if s["id"] == sid)

    @app.delete(f"{PREFIX}/silences/{{silence_id}}", tags=["silences"], response_model=Silence,
                dependencies=[Depends(writer)], responses=_problems(401, 404))
    def expire_silence(silence_id: Annotated[int, Path(ge=1, le=_MAX_ID)]) -> Silence:
        """End a silence now (it stays listed as expired)."""
        now = now_ms()
        if not store.expire_silence(silence_id, now):
            raise HTTPException(404, f"no silence {silence_id}")
        return next(_silence(s, now) for s in store.list_silences() if s["id"] == silence_id)

    # --- references
    csv_body = {"schema": {"type": "string"}, "example": "AGEP,SCHL,prediction.employed\n35,21,true\n52,16,false\n"}
    jsonl_body = {"schema": {"type": "string"},
                  "example": '{"AGEP": 35, "SCHL": 21, "prediction.employed": true}\n'
                             '{"AGEP": 52, "SCHL": 16, "prediction.employed": false}\n'}
    binary_body = {"schema": {"type": "string", "format": "binary"}}

    @app.put(f"{PREFIX}/models/{{model:name}}/reference", tags=["models"], response_model=ReferenceStored,
             dependencies=[Depends(writer)], responses=_problems(400, 401, 409, 413, 415),
             openapi_extra={"requestBody": {"required": True, "description": (
                 "Training data, one column per feature named as in the records, predictions as "
                 "prediction.<name>, an optional label column (ignored): CSV, Parquet, or JSON lines "
                 "(one flat object per line)."),
                 "content": {"text/csv": csv_body, "application/vnd.apache.parquet": binary_body,
                             "application/x-ndjson": jsonl_body}}})
    async def put_reference(model: ModelName, request: Request,
                            model_version: Annotated[str, Query(min_length=1, max_length=256, pattern=r"^[^\x00]+$",
                                                                description="'*': every version")] = "*",
                            force: Annotated[bool, Query(description="replace the stored reference even if the "
                                                         "new one drops some of its columns or changes a "
                                                         "column's kind (else 409)")] = False,
                            ) -> ReferenceStored:
        """Build a reference profile from training data and store it, replacing the one of
        this version (as ``inferwatch reference set``); windows closed from now on are compared
        with it. 400: fewer rows than drift.min_count, or a CSV body with a column name twice or
        lines without one field per column; 409: it drops columns of the stored reference or
        changes a column's kind (numeric or categorical), unless force=true."""
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        fmt = UPLOAD_TYPES.get(media)
        if fmt is None:
            raise HTTPException(415, f"Content-Type must be one of {', '.join(UPLOAD_TYPES)} (got {media or 'none'})")
        with tempfile.TemporaryDirectory(prefix="inferwatch-upload-") as tmp:
            path = FilePath(tmp) / f"upload.{fmt}"
            with path.open("wb") as f:
                async for chunk in request.stream():  # bounded by BodyLimit
                    f.write(chunk)
            return await run_in_threadpool(_store_reference, settings, store, model, model_version, fmt, path,
                                           force)

    return app


def _read_upload(fmt: str, path: FilePath):
    """The uploaded training data as ``read_reference_file`` returns it (same columns, same checks).

    Raises:
        HTTPException: 400 naming what is wrong with the body.
    """
    from inferwatch.reference import read_reference_file

    source = path
    if fmt == "jsonl":
        import pandas as pd

        rows = []
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise HTTPException(400, f"line {n} is not JSON") from None
            if not isinstance(obj, dict):
                raise HTTPException(400, f"line {n} is not a JSON object")
            nested = [k for k, v in obj.items() if isinstance(v, (dict, list))]
            if nested:
                raise HTTPException(400, f"line {n}: {nested[0]!r} holds an object or array; values must be "
                                         "numbers, text, booleans or null")
            rows.append(obj)
        if not rows:
            raise HTTPException(400, "the body has no rows; a reference needs training data")
        source = path.with_suffix(".parquet")
        try:
            pd.DataFrame.from_records(rows).to_parquet(source)
        except (ValueError, TypeError, OverflowError) as exc:
            raise HTTPException(400, f"a column mixes types or holds a value out of range: {exc}") from None
    try:
        return read_reference_file(source)
    except (ValueError, TypeError, OSError) as exc:
        # the messages name the CLI's flag and a file; here it is the request body
        text = str(exc).replace("--file: ", "").replace(str(source), "the request body")
        raise HTTPException(400, text) from None


def _store_reference(settings: Settings, store: Store, model: str, model_version: str, fmt: str,
                     path: FilePath, force: bool = False) -> ReferenceStored:
    """Profile the uploaded data, check it (:func:`inferwatch.reference.check_reference`) and
    store it (``inferwatch reference set``'s steps).

    Raises:
        HTTPException: 400 for a body that can never be a reference, 409 for one that would
            drop columns of the stored reference or change their kind (without ``force``).
    """
    from detectors import kind_of
    from inferwatch.reference import ReferenceRefused, check_reference, profile_frame, stored_reference

    frame = _read_upload(fmt, path)
    try:
        profile = profile_frame(frame, set(settings.drift.categorical.get(model, [])), settings.reference.n_bins,
                                settings.reference.sample_size)
    except (ValueError, TypeError) as exc:
        raise HTTPException(400, f"cannot build a profile from the body: {exc}") from None
    source = f"api upload ({fmt})"
    try:
        with store.transaction() as conn:
            check_reference(profile, stored_reference(store, conn, model, model_version), settings.drift.min_count,
                            force)
            store.put_reference(conn, model, model_version, source, len(frame), profile.to_dict())
    except ReferenceRefused as exc:
        if exc.conflict:
            raise HTTPException(409, f"{exc}; the stored reference is kept (force=true replaces it)") from None
        raise HTTPException(400, str(exc)) from None
    kinds: dict[str, list[str]] = {}
    for c, p in profile.columns.items():
        kinds.setdefault(kind_of(p), []).append(c)
    return ReferenceStored(model=model, model_version=model_version, source=source, n_rows=len(frame),
                           numeric_columns=kinds.get("numeric", []), categorical_columns=kinds.get("categorical", []))


# --- serving -------------------------------------------------------------------------------------------------------

class ApiServer:
    """uvicorn serving an app from a daemon thread.

    Args:
        app: the ASGI app (:func:`create_app`).
        host, port: where to listen; port 0 picks a free one (see :attr:`port` after :meth:`start`).
    """

    def __init__(self, app, host: str, port: int) -> None:
        import uvicorn

        self.host = host
        self.port = port
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                                     timeout_graceful_shutdown=5, server_header=False))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8080``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> int:
        """Bind, start serving and wait until uvicorn accepts connections; returns the port.

        Raises:
            OSError: the address cannot be bound (port taken, host not of this machine).
            RuntimeError: uvicorn did not start within ``timeout`` seconds.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="inferwatch-api",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        log.info("API on %s (OpenAPI document at /openapi.json, docs at /docs)", self.url)
        return self.port

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish requests in flight (up to 5 s) and join the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set or the server ends by itself."""
        while not stop.wait(0.5):
            if self._thread is None or not self._thread.is_alive():
                return


def start_api(settings: Settings, store: Store, ready: Callable[[], bool] | None = None) -> ApiServer:
    """Serve the API on ``api.host:api.port`` from a daemon thread.

    Raises:
        ValueError: ``api.token`` is not set.
        OSError: the address cannot be bound.
    """
    server = ApiServer(create_app(settings, store, ready=ready), settings.api.host, settings.api.port)
    server.start()
    return server

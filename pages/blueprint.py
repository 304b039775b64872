"""The results website: a Flask blueprint at /results, readable from any ResultReader.

    /results/<owner>/<repo>/                      the pipeline's runs, newest first
    /results/<owner>/<repo>/run/<runId>           one run: graph, stages, logs
    /results/<owner>/<repo>/run/<runId>.json      run.json + stage JSONs (the live page polls it)
    /results/<owner>/<repo>/run/<runId>/<stage>.log   the raw log
    /results/<owner>/<repo>/run/<runId>/<stage>.zip   the stage's artefact

`locate(owner, repo)` says which store holds a pipeline's results (None: 404),
so the bot and `dockercise serve-results` differ only in that function.
Every part of a URL is checked with `valid_part` and then against what the
store itself lists before anything is read: a part that is unknown or could
climb out of the store (`..`, an encoded `/` or `\\`, NUL) is a 404.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup

from pages import graph, reading
from pages.actions import NO_CONTROLS, Controls
from pages.links import PREFIX
from runner.durations import elapsed, format_duration, moment
from runner.errors import StoreUnavailable
from runner.outcome import Status
from runner.store.base import ResultReader, valid_part

__all__ = ["SECURITY_HEADERS", "Locate", "make_blueprint", "secure"]

Locate = Callable[[str, str], ResultReader | None]

SECURITY_HEADERS = {
    # Logs are untrusted text: no inline script may ever run, nothing is sniffed as HTML.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def secure(response: Response) -> Response:
    """The site's headers on a response, unless an earlier hook set its own."""
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    return response


def _streamed(store: ResultReader, run_id: str, name: str, mimetype: str) -> Response:
    """The stored file, read and sent a chunk at a time (a log or zip may be gigabytes)."""
    found = store.stream(run_id, name)
    if found is None:
        abort(404)
    size, chunks = found
    response = Response(chunks, mimetype=mimetype)
    response.content_length = size
    return response


def _attachment(response: Response, filename: str) -> Response:
    """`Content-Disposition: attachment`, with an ASCII fallback name as Flask's send_file does."""
    try:
        filename.encode("ascii")
        names = {"filename": filename}
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
        names = {"filename": simple, "filename*": f"UTF-8''{quote(filename, safe='')}"}
    response.headers.set("Content-Disposition", "attachment", **names)
    return response


def make_blueprint(locate: Locate, controls: Controls | None = None) -> Blueprint:
    """The /results pages for the pipelines that `locate` knows; `controls` adds a run page's
    buttons (the bot's Re-run and Cancel; none for `dockercise serve-results`)."""
    bp = Blueprint(
        "results",
        __name__,
        url_prefix=PREFIX,
        template_folder="templates",
        static_folder="static",
        static_url_path="/_static",  # `_static` cannot be a GitHub owner
    )

    def store_of(owner: str, repo: str) -> ResultReader:
        store = locate(owner, repo) if valid_part(owner) and valid_part(repo) else None
        if store is None:
            abort(404)
        return store

    def state_of(store: ResultReader, run_id: str) -> reading.RunState:
        state = reading.run_state(store, run_id) if valid_part(run_id) else None
        if state is None:
            abort(404)
        return state

    @bp.get("/<owner>/<repo>/")
    def runs(owner: str, repo: str) -> str:
        store = store_of(owner, repo)
        page = request.args.get("page", 0, type=int) or 0
        if page < 0:
            abort(404)
        rows, more = reading.run_rows(store, page)
        return render_template(
            "results/runs.html", owner=owner, repo=repo, rows=rows, page=page, more=more
        )

    @bp.get("/<owner>/<repo>/run/<run_id>")
    def run(owner: str, repo: str, run_id: str) -> str | Response:
        # `<runId>.json` is answered here rather than by a rule of its own, so that no
        # ordering between two overlapping rules decides it (run ids never end in .json).
        if run_id.endswith(".json"):
            return state(owner, repo, run_id.removesuffix(".json"))
        store = store_of(owner, repo)
        found = state_of(store, run_id)
        stages = reading.stage_rows(store, run_id, found)
        statuses = {s.name: s.status for s in stages}
        anchors = {name: f"#stage-{i}" for i, name in reversed(list(enumerate(found.names)))}
        drawing = graph.svg(
            found.names, found.edges, statuses, href=anchors.__getitem__, title=f"run {run_id}"
        )
        return render_template(
            "results/run.html",
            owner=owner,
            repo=repo,
            run_id=run_id,
            run=found.run,
            trigger=found.run.get("trigger") if isinstance(found.run.get("trigger"), dict) else {},
            seconds=elapsed(found.run),
            started=moment(found.run.get("started")),
            stages=stages,
            graph=Markup(drawing),  # built from escaped parts by pages.graph
            live=found.run.get("status") == Status.RUNNING,
            version=found.version,
            controls=NO_CONTROLS if controls is None else controls(owner, repo, run_id, found.run),
        )

    def state(owner: str, repo: str, run_id: str) -> Response:
        found = state_of(store_of(owner, repo), run_id)
        body = json.dumps(found.to_json(), ensure_ascii=False, default=str)
        return Response(body, mimetype="application/json", headers={"Cache-Control": "no-store"})

    @bp.get("/<owner>/<repo>/run/<run_id>/<filename>")
    def stage_file(owner: str, repo: str, run_id: str, filename: str) -> Response:
        store = store_of(owner, repo)
        found = state_of(store, run_id)
        stage, dot, suffix = filename.rpartition(".")
        stored = set(store.names(run_id))
        if suffix == "log" and stage not in found.names:  # a service's, `<stage>.<service>.log`
            owner_stage = stage.rpartition(".")[0]
            if owner_stage not in found.names:
                abort(404)
            entry = found.stages[found.names.index(owner_stage)]
            if filename not in reading.service_logs(entry, stored).values():
                abort(404)
            response = _streamed(store, run_id, filename, "text/plain")
            response.headers["Cache-Control"] = "no-cache"
            return response
        if not dot or suffix not in ("log", "zip") or stage not in found.names:
            abort(404)
        entry = found.stages[found.names.index(stage)]
        if suffix == "log":
            if not reading.log_allowed(entry, stored):
                abort(404)
            # The bytes as stored (escapes and all): text/plain and nosniff keep them inert.
            response = _streamed(store, run_id, filename, "text/plain")
            response.headers["Cache-Control"] = "no-cache"
            return response
        if filename not in stored or entry.get("artefact") is None:
            abort(404)
        return _attachment(_streamed(store, run_id, filename, "application/zip"), filename)

    bp.after_request(secure)

    @bp.errorhandler(StoreUnavailable)
    def unavailable(error: StoreUnavailable) -> tuple[str, int]:
        return render_template(
            "results/message.html", heading="Results unavailable", message=str(error)
        ), 503

    @bp.app_template_filter("duration")
    def _duration(seconds: float | None) -> str:
        return format_duration(seconds)

    @bp.app_template_filter("when")
    def _when(moment: datetime | None) -> str:
        return format_time(moment)

    return bp


def format_time(moment: datetime | None) -> str:
    """UTC, to the second: the stored times are UTC and the page does not guess a zone."""
    if moment is None:
        return "—"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")

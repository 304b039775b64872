"""What `dockercise run` shows: each stage's output prefixed by its name, a live table of
stages on a terminal, and a summary table at the end."""

from __future__ import annotations

import threading
from datetime import datetime

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runner.durations import format_duration, seconds_between
from runner.outcome import RunResult, StageResult, Status, now

__all__ = ["ConsoleReporter"]

_COLOURS = [
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
]
_STYLE = {
    Status.WAITING: ("waiting", "dim"),
    Status.RUNNING: ("running", "bold yellow"),
    Status.SUCCESS: ("passed", "bold green"),
    Status.FAILURE: ("failed", "bold red"),
    Status.ERROR: ("error", "bold red"),
    Status.SKIPPED: ("skipped", "dim"),
    Status.CANCELLED: ("cancelled", "yellow"),
}


def _took(start: datetime | None, end: datetime | None) -> str:
    """How long so far (no `end` yet) or in all; blank before it started."""
    if start is None:
        return ""
    return format_duration(seconds_between(start, end or now()))


class ConsoleReporter:
    """Thread-safe: stages report from their worker threads."""

    def __init__(
        self, console: Console | None = None, quiet: bool = False, live: bool | None = None
    ) -> None:
        self.console = console or Console(soft_wrap=True, highlight=False)
        self.quiet = quiet
        self.live_enabled = self.console.is_terminal if live is None else live
        self._live: Live | None = None
        self._lock = threading.Lock()
        self._run: RunResult | None = None
        self._order: list[str] = []
        self._started: dict[str, datetime] = {}
        self._prefix: dict[str, Text] = {}

    def run_started(self, run: RunResult, order: list[str]) -> None:
        self._run, self._order = run, order
        width = max((len(n) for n in order), default=0)
        self._prefix = {
            n: Text(f"{n.ljust(width)} | ", style=_COLOURS[i % len(_COLOURS)])
            for i, n in enumerate(order)
        }
        self.console.print(
            Text(f"run {run.id}: {run.pipeline}, {len(order)} stage(s)", style="bold")
        )
        if self.live_enabled:
            self._live = Live(
                get_renderable=self._board,
                console=self.console,
                refresh_per_second=8,
                transient=True,
            )
            self._live.start()

    def _line(self, name: str, text: Text) -> None:
        self.console.print(self._prefix.get(name, Text(f"{name} | ")) + text)

    def stage_started(self, name: str) -> None:
        with self._lock:
            self._started[name] = now()
        if not self.quiet and not self.live_enabled:
            self._line(name, Text("started", style="dim"))

    def stage_output(self, name: str, line: str) -> None:
        if not self.quiet:
            self._line(name, Text(line))

    def stage_note(self, name: str, text: str) -> None:
        if not self.quiet:
            self._line(name, Text(text, style="dim italic"))

    def stage_finished(self, result: StageResult) -> None:
        if self.quiet:
            return
        label, style = _STYLE[result.status]
        extra = f" ({result.reason})" if result.reason else ""
        took = (
            f" in {format_duration(result.duration)}"
            if result.duration is not None and result.status is not Status.SKIPPED
            else ""
        )
        self._line(result.name, Text(f"{label}{took}{extra}", style=style))

    def close(self) -> None:
        """Stop the live table (a run that ends in an error never finishes)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def run_finished(self, run: RunResult) -> None:
        self.close()
        self.console.print(self._table(run, final=True))
        label, style = _STYLE.get(run.status, (run.status.value, "bold"))
        if run.status is Status.FAILURE:
            label = "failed"
        self.console.print(
            Text(f"run {run.id} {label} in {_took(run.started, run.finished)}", style=style)
        )

    def _board(self) -> Group:
        assert self._run is not None
        return Group(self._table(self._run, final=False))

    def _table(self, run: RunResult, final: bool) -> Table:
        table = Table(title="summary" if final else None, show_edge=final, box=None)
        table.add_column("stage")
        table.add_column("status")
        table.add_column("time", justify="right")
        table.add_column("reason" if final else "")
        for name in self._order or list(run.stages):
            result = run.stages[name]
            label, style = _STYLE[result.status]
            start = result.started or self._started.get(name)
            took = "" if result.status is Status.SKIPPED else _took(start, result.finished)
            table.add_row(Text(name), Text(label, style=style), took, Text(result.reason or ""))
        return table

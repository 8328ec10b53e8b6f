"""HTML reports of runs: ``layerflow show`` / ``lf.view_run`` and ``layerflow compare`` / ``lf.compare_runs``."""

from __future__ import annotations

import difflib
import math
import os
import re
import tempfile
import webbrowser
from pathlib import Path
from typing import Any

from layerflow.runs import files as f
from layerflow.runs.source_files import read_sources
from layerflow.runs.store import RunStore

MAX_OUTPUT_CHARS = 200_000
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("layerflow.runs", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    env.filters["fmt"] = lambda v: f"{v:.4g}" if isinstance(v, float) else ("—" if v is None else v)
    return env


def clean_console_text(text: str) -> str:
    """Console output as a reader sees it: colour codes dropped, redraws (\\r, \\b) applied."""
    lines = []
    for line in _ANSI.sub("", text).split("\n"):
        line = line.rstrip("\r").rsplit("\r", 1)[-1]
        shown: list[str] = []
        for char in line:
            if char == "\b":
                if shown:
                    shown.pop()
            else:
                shown.append(char)
        lines.append("".join(shown))
    return "\n".join(lines)


def _output(run_dir: Path) -> str:
    path = run_dir / f.OUTPUT_FILE
    if not path.is_file():
        return "(no output recorded)"
    text = path.read_text(errors="replace")
    if len(text) > MAX_OUTPUT_CHARS:
        text = f"... ({len(text) - MAX_OUTPUT_CHARS} earlier characters left out)\n" + text[-MAX_OUTPUT_CHARS:]
    return clean_console_text(text)


def curves(epochs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Chart columns of a run's epochs: ``{"epoch": [...], "loss": [...], "val_loss": [...]}`` (None where missing).

    Args:
        epochs: the records of ``metrics.jsonl``, as ``files.read_metrics`` returns them.

    Returns:
        One list per metric, aligned on ``epoch``; what ``charts.js`` draws.

    Example:
        >>> curves([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4, "val_loss": 0.45}])
        {'epoch': [1, 2], 'loss': [0.5, 0.4], 'val_loss': [None, 0.45]}
    """
    names = list(
        dict.fromkeys(
            k
            for e in epochs
            for k, v in e.items()
            if k not in f.EPOCH_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)
        )
    )
    data: dict[str, list[Any]] = {"epoch": [e.get("epoch", i + 1) for i, e in enumerate(epochs)]}
    for name in names:
        data[name] = [_finite(e.get(name)) for e in epochs]
    return data


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _run_curves(run_dir: Path) -> dict[str, list[Any]]:
    return curves(f.read_metrics(run_dir / f.METRICS_FILE)[0])


def chart_assets() -> dict[str, str]:
    """uPlot (vendored from npm, MIT) and the chart code, inlined into reports so they make no request."""
    assets = Path(__file__).parent / "templates" / "assets"
    js = "\n".join((assets / name).read_text() for name in ("uPlot.iife.min.js", "charts.js"))
    return {"css": (assets / "uPlot.min.css").read_text(), "js": js.replace("</script", "<\\/script")}


def _deliver(html: str, out: str | os.PathLike[str] | None, name: str, browse: bool) -> Path:
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="layerflow-")) / name
    path.write_text(html)
    if out is None and browse:
        try:
            webbrowser.get()
        except webbrowser.Error:
            return path
        webbrowser.open(path.as_uri())
    return path


def render_run(run: str, runs_dir: str | os.PathLike[str] | None = None) -> str:
    """The HTML report of one run, as a string."""
    store = RunStore(runs_dir)
    record = store.record(run)
    run_dir = Path(record["path"])
    summary_path = run_dir / f.SUMMARY_FILE
    return (
        _environment()
        .get_template("run.html.j2")
        .render(
            run=record,
            curves=_run_curves(run_dir),
            assets=chart_assets(),
            summary=summary_path.read_text() if summary_path.is_file() else None,
            output=_output(run_dir),
            sources=list(read_sources(run_dir).items()),
        )
    )


def view_run(
    run: str = "latest",
    runs_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    browse: bool = True,
) -> Path:
    """Writes a self-contained HTML report of a run and opens it in a browser when there is one.

    The report holds the metric curves, flags, evaluation, output, source code and model
    summary.

    Args:
        run: a run id, an id prefix, ``latest`` or ``latest~N``.
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).
        out: where to write the HTML file (default: a temporary file).
        browse: open the page in a browser when one exists.

    Returns:
        The path of the HTML file (``out`` if given, else a temporary file).

    Example:
        >>> lf.view_run("latest", out="report.html")
    """
    return _deliver(render_run(run, runs_dir), out, f"run-{run}.html", browse)


def _pairs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b])]


def _delta(va: Any, vb: Any) -> Any:
    if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and not isinstance(va, bool):
        return vb - va
    return None


def render_comparison(run_a: str, run_b: str, runs_dir: str | os.PathLike[str] | None = None) -> str:
    """The HTML comparison of two runs, as a string."""
    store = RunStore(runs_dir)
    a, b = store.record(run_a), store.record(run_b)
    dir_a, dir_b = Path(a["path"]), Path(b["path"])
    source_a, source_b = read_sources(dir_a), read_sources(dir_b)
    differ = difflib.HtmlDiff(wrapcolumn=80)
    diffs = []
    for name in sorted(set(source_a) | set(source_b)):
        text_a, text_b = source_a.get(name, ""), source_b.get(name, "")
        if text_a != text_b:
            table = differ.make_table(
                text_a.splitlines(), text_b.splitlines(), f"A: {name}", f"B: {name}", context=True, numlines=3
            )
            diffs.append((name, table))
    tables = [
        (title, [(k, va, vb, _delta(va, vb)) for k, va, vb in _pairs(a.get(key) or {}, b.get(key) or {})])
        for title, key in (("Final metrics", "metrics"), ("Evaluation", "evaluation"))
    ]
    return (
        _environment()
        .get_template("compare.html.j2")
        .render(
            a=a,
            b=b,
            curves_a=_run_curves(dir_a),
            curves_b=_run_curves(dir_b),
            assets=chart_assets(),
            flags=_pairs(a.get("flags") or {}, b.get("flags") or {}),
            tables=[t for t in tables if t[1]],
            diffs=diffs,
        )
    )


def compare_runs(
    run_a: str = "latest~1",
    run_b: str = "latest",
    runs_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    browse: bool = True,
) -> Path:
    """Writes an HTML page comparing two runs side by side and opens it when a browser exists.

    Metric curves are overlaid, differing flags highlighted, metrics and evaluation
    shown with their difference, and the source snapshots diffed file by file.

    Args:
        run_a: the first run (id, prefix, ``latest~1``...).
        run_b: the second run.
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).
        out: where to write the HTML file (default: a temporary file).
        browse: open the page in a browser when one exists.

    Returns:
        The path of the HTML file.

    Example:
        >>> lf.compare_runs("latest~1", "latest", out="compare.html")
    """
    return _deliver(render_comparison(run_a, run_b, runs_dir), out, "compare.html", browse)

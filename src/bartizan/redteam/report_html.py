"""The self-contained HTML report of a red-team run: inline CSS and inline SVG charts, no script, no external URL.

Why self-contained: the report is archived as a CI artifact and opened offline, often from a sandbox that blocks
remote assets; and a report about attacks must not itself fetch anything. Every string from the data is escaped.
The report shows ids, rates and intervals only, never prompts or answers (those stay in attempts.jsonl).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from bartizan import __version__
from bartizan.redteam.attempts import Attempt
from bartizan.redteam.metrics import Mode, outcome

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#1d232a;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ccd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccd;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f2f4f8}.warn{color:#8a4b00}.muted{color:#667}
.headline{display:flex;gap:2em;flex-wrap:wrap}.headline div{background:#f6f7fb;padding:.6em 1em;border-radius:6px}
.big{font-size:1.6em;font-weight:600}svg{display:block;margin:.5em 0}svg text{font-size:12px;fill:#1d232a}
"""
_LIMIT_ROWS = 500


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _ci(node: dict[str, Any] | None, key: str = "ci") -> str:
    ci = node.get(key) if node else None
    if not ci:
        return "–"
    hi = "∞" if ci["high"] is None else f"{ci['high']:.1%}"
    return f"{ci['low']:.1%} – {hi}"


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "–" if value is None else format(value, fmt)


# --- charts -------------------------------------------------------------------------------------------------
def _bars(rows: Sequence[tuple[str, dict[str, Any] | None]], colour: str, label_w: int = 200) -> str:
    """Horizontal bars of rates (0-1) with 95% interval whiskers; one row per (label, estimate)."""
    if not rows:
        return '<p class="muted">no data</p>'
    row_h, plot_w = 24, 420
    width, height = label_w + plot_w + 140, row_h * len(rows) + 28
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + tick * plot_w
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 20}" stroke="#e3e6ee"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle">{tick:.0%}</text>')
    for i, (label, est) in enumerate(rows):
        y = i * row_h + 4
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{_e(label)}</text>')
        rate = est.get("rate") if est else None
        if rate is None:
            parts.append(f'<text x="{label_w + 4}" y="{y + 14}" class="muted">not measured</text>')
            continue
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{rate * plot_w:.1f}" height="{row_h - 8}" fill="{colour}"/>'
        )
        ci = est.get("ci") if est else None
        if ci:
            lo, hi = label_w + ci["low"] * plot_w, label_w + ci["high"] * plot_w
            mid = y + row_h / 2 - 1
            parts.append(f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" stroke="#111" stroke-width="1.5"/>')
            for x in (lo, hi):
                parts.append(f'<line x1="{x:.1f}" y1="{mid - 5}" x2="{x:.1f}" y2="{mid + 5}" stroke="#111"/>')
        n = est.get("n", 0) if est else 0
        parts.append(f'<text x="{label_w + plot_w + 8}" y="{y + 14}">{_pct(rate)} (n={n})</text>')
    parts.append("</svg>")
    return "".join(parts)


def _heat_colour(rate: float) -> str:
    g = round(245 - 200 * rate)
    return f"rgb(245,{g},{round(g * 0.9)})"


def _heatmap(grid: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Category x transformation cells coloured by attack success rate (grey: nothing judged)."""
    if not grid:
        return '<p class="muted">no data</p>'
    cols = sorted({t for row in grid.values() for t in row})
    cell_w, cell_h, label_w, head_h = 74, 26, 200, 90
    width, height = label_w + cell_w * len(cols) + 10, head_h + cell_h * len(grid) + 10
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for j, t in enumerate(cols):
        x = label_w + j * cell_w + cell_w / 2
        parts.append(f'<text transform="translate({x:.1f},{head_h - 6}) rotate(-40)">{_e(t)}</text>')
    for i, (cat, row) in enumerate(sorted(grid.items())):
        y = head_h + i * cell_h
        parts.append(f'<text x="{label_w - 6}" y="{y + 17}" text-anchor="end">{_e(cat)}</text>')
        for j, t in enumerate(cols):
            x = label_w + j * cell_w
            est = row.get(t)
            rate = est.get("rate") if est else None
            fill = "#eeeeee" if rate is None else _heat_colour(rate)
            n = est.get("n", 0) if est else 0
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{fill}">'
                f"<title>{_e(cat)} × {_e(t)}: {_pct(rate)} (n={n})</title></rect>"
            )
            parts.append(f'<text x="{x + cell_w / 2 - 1}" y="{y + 17}" text-anchor="middle">{_pct(rate)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _paired(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Plain vs stylised bars per group, from stylised_vs_plain ratios."""
    bars: list[tuple[str, dict[str, Any] | None]] = []
    for label, r in rows:
        if not r.get("cases"):
            continue
        bars.append((f"{label} · plain", r["plain"]))
        bars.append((f"{label} · stylised", r["numerator"]))
    return _bars(bars, "#7a5cc2", label_w=260)


def _deltas(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Diverging bars of rate changes (current - previous) in percentage points, -100 to +100."""
    rows = [(k, d) for k, d in rows if d.get("delta") is not None]
    if not rows:
        return '<p class="muted">no metric measured in both runs</p>'
    row_h, half, label_w = 24, 200, 220
    width, height = label_w + 2 * half + 120, row_h * len(rows) + 8
    zero = label_w + half
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    parts.append(f'<line x1="{zero}" y1="0" x2="{zero}" y2="{height}" stroke="#999"/>')
    for i, (label, d) in enumerate(rows):
        y = i * row_h + 4
        w = d["delta"] * half
        x = zero if w >= 0 else zero + w
        colour = "#c0392b" if w > 0 else "#2e8b57"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{_e(label)}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{abs(w):.1f}" height="{row_h - 8}" fill="{colour}"/>')
        parts.append(f'<text x="{zero + half + 8}" y="{y + 14}">{d["delta"] * 100:+.1f} pp</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- tables -------------------------------------------------------------------------------------------------
def _table(title: str, group: dict[str, dict[str, Any]], what: str) -> str:
    if not group:
        return ""
    head = f"<tr><th>{_e(title)}</th><th>{_e(what)}</th><th>95% CI (bootstrap)</th><th>n</th><th>cases</th>"
    out = [f"<table>{head}<th>errors</th><th>unclear</th></tr>"]
    for key, est in group.items():
        out.append(
            f"<tr><td>{_e(key)}</td><td>{_pct(est.get('rate'))}</td><td>{_ci(est)}</td><td>{est.get('n', 0)}</td>"
            f"<td>{est.get('cases', 0)}</td><td>{est.get('errors', 0)}</td><td>{est.get('unclear', 0)}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _ratio_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    out = [
        "<table><tr><th>group</th><th>paired cases</th><th>plain ASR</th><th>transformed ASR</th><th>ratio</th>"
        "<th>ratio 95% CI</th><th>difference</th><th>difference 95% CI</th></tr>"
    ]
    for label, r in rows:
        out.append(
            f"<tr><td>{_e(label)}</td><td>{r.get('cases', 0)}</td><td>{_pct(r['plain']['rate'])}</td>"
            f"<td>{_pct(r['numerator']['rate'])}</td><td>{_num(r.get('ratio'))}×</td>"
            f"<td>{_ci_num(r.get('ratio_ci'))}</td><td>{_pct(r.get('difference'))}</td>"
            f"<td>{_ci(r, 'difference_ci')}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _ci_num(ci: dict[str, Any] | None) -> str:
    if not ci:
        return "–"
    return f"{ci['low']:.2f} – {'∞' if ci['high'] is None else format(ci['high'], '.2f')}"


def _judge(acc: dict[str, Any] | None) -> str:
    """Held-out precision/recall of each judge (the `test` block of judge_accuracy), else the raw key/values."""
    if not acc:
        return '<p class="warn">The judge\'s measured accuracy is not available for this run.</p>'
    test = acc.get("test")
    if isinstance(test, dict) and all(isinstance(v, dict) for v in test.values()):
        out = ["<table><tr><th>judge</th><th>precision</th><th>recall</th><th>F1</th><th>accuracy</th><th>n</th></tr>"]
        for name, m in sorted(test.items()):
            out.append(
                f"<tr><td>{_e(name)}</td><td>{_num(m.get('precision'), '.3f')}</td><td>{_num(m.get('recall'), '.3f')}"
                f"</td><td>{_num(m.get('f1'), '.3f')}</td><td>{_num(m.get('accuracy'), '.3f')}</td>"
                f"<td>{_e(m.get('n', '–'))}</td></tr>"
            )
        out.append("</table>")
        note = acc.get("positive_class")
        return "".join(out) + (f'<p class="muted">Positive class: {_e(note)}; held-out split.</p>' if note else "")
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in sorted(acc.items()))
    return f"<table>{rows}</table>"


def _judge_line(acc: dict[str, Any] | None) -> str:
    test = acc.get("test") if acc else None
    m = test.get("combined") if isinstance(test, dict) else None
    if not isinstance(m, dict):
        return "judge accuracy: not available"
    p, r = _num(m.get("precision"), ".2f"), _num(m.get("recall"), ".2f")
    return f"judge (combined, held out): precision {p}, recall {r}, n={_e(m.get('n', '–'))}"


def _hits(attempts: Sequence[Attempt], mode: Mode) -> str:
    rows = [a for a in attempts if not a.benign and outcome(a, mode) == "success"]
    if not rows:
        return '<p class="muted">none</p>'
    out = [
        "<table><tr><th>probe</th><th>case</th><th>family</th><th>transform</th><th>category</th><th>judge</th></tr>"
    ]
    for a in rows[:_LIMIT_ROWS]:
        out.append(
            f"<tr><td>{_e(a.probe_id)}</td><td>{_e(a.case_id)}</td><td>{_e(a.family)}</td><td>{_e(a.transform)}</td>"
            f"<td>{_e(a.category or '–')}</td><td>{_e(a.judge)}</td></tr>"
        )
    out.append("</table>")
    more = len(rows) - _LIMIT_ROWS
    return "".join(out) + (f'<p class="muted">… and {more} more in attempts.jsonl</p>' if more > 0 else "")


# --- page ---------------------------------------------------------------------------------------------------
def render_html(summary: dict[str, Any], attempts: Sequence[Attempt], *, changes: dict[str, Any] | None = None) -> str:
    """The whole report as one HTML string (`changes`: the output of metrics.diff against the previous run)."""
    mode: Mode = summary.get("mode", "model")
    asr, frr, c = summary["asr"], summary["frr"], summary["counts"]
    fw = summary.get("firewall")
    what = "passed the firewall" if mode == "firewall" else "attack success"
    b: list[str] = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>bartizan red-team report ({_e(mode)})'
        f"</title><style>{_CSS}</style></head><body>",
        f"<h1>bartizan red-team report</h1><p class='muted'>mode: {_e(mode)} · {c['attempts']} attempts on "
        f"{c['cases']} cases · {c['errors']} errors and {c['unclear']} unclear (excluded from rates) · bartizan "
        f"{_e(__version__)}</p>",
    ]
    b.extend(f'<p class="warn">⚠ {_e(w)}</p>' for w in summary.get("warnings", []))
    o, f = asr["overall"], frr["overall"]
    head = [
        f"<div><div>{_e(what)}</div><div class='big'>{_pct(o['rate'])}</div><div>95% CI {_ci(o)} · n={o['n']}</div>"
        f"<div class='muted'>{_judge_line(summary.get('judge_accuracy'))}</div></div>",
        f"<div><div>false refusal (benign twins)</div><div class='big'>{_pct(f['rate'])}</div>"
        f"<div>95% CI {_ci(f)} · n={f['n']}</div></div>",
    ]
    r = summary["stylised_vs_plain"]["overall"]
    head.append(
        f"<div><div>stylised vs plain</div><div class='big'>{_num(r.get('ratio'))}×</div>"
        f"<div>95% CI {_ci_num(r.get('ratio_ci'))} · {r.get('cases', 0)} paired cases</div></div>"
    )
    if fw:
        rb, fb = fw["recall_blocked"]["overall"], fw["fpr_blocked"]["overall"]
        head.append(
            f"<div><div>firewall recall (blocked)</div><div class='big'>{_pct(rb['rate'])}</div>"
            f"<div>95% CI {_ci(rb)} · FPR {_pct(fb['rate'])}</div></div>"
        )
    b.append(f"<div class='headline'>{''.join(head)}</div>")
    b.append(f"<h2>{_e(what.capitalize())} by family</h2>")
    b.append(_bars(list(asr["by_family"].items()), "#c0392b"))
    b.append(_table("family", asr["by_family"], "rate"))
    b.append("<h2>Hazard category × transformation</h2>" + _heatmap(summary.get("asr_heatmap", {})))
    b.append("<h2>Plain vs stylised (paired cases)</h2>")
    sv = summary["stylised_vs_plain"]
    ratio_rows = [("all", sv["overall"]), *sv["by_family"].items()]
    b.append(_paired(ratio_rows) + _ratio_table(ratio_rows))
    vs = summary.get("vs_plain", {})
    vs_rows = [*vs.get("by_transform_family", {}).items(), *vs.get("by_transform", {}).items()]
    if vs_rows:
        b.append("<h3>Each transformation vs plain</h3>" + _ratio_table(vs_rows))
    b.append("<h2>By transformation</h2>" + _table("transformation", asr["by_transform"], "rate"))
    b.append(_table("transformation family", asr["by_transform_family"], "rate"))
    b.append(_table("hazard category", asr["by_category"], "rate"))
    b.append("<h2>False refusal on benign twins</h2>")
    b.append(_bars(list(frr["by_transform"].items()), "#d68910"))
    b.append(_table("transformation", frr["by_transform"], "false-refusal rate"))
    b.append(_table("source", frr["by_source"], "false-refusal rate"))
    if fw:
        b.append("<h2>Firewall recall and false positives</h2>")
        b.append(_bars(list(fw["recall_blocked"]["by_family"].items()), "#2e86c1"))
        b.append(_table("family (blocked)", fw["recall_blocked"]["by_family"], "recall"))
        b.append(_table("family (blocked or flagged)", fw["recall_blocked_or_flagged"]["by_family"], "recall"))
        b.append(_table("transformation (blocked)", fw["recall_blocked"]["by_transform"], "recall"))
        b.append(_table("benign by transformation (blocked)", fw["fpr_blocked"]["by_transform"], "FPR"))
        b.append(
            _table("benign by transformation (blocked or flagged)", fw["fpr_blocked_or_flagged"]["by_transform"], "FPR")
        )
    b.append("<h2>Judge accuracy</h2>" + _judge(summary.get("judge_accuracy")))
    if changes is not None:
        b.append("<h2>Change since last run</h2>")
        b.extend(f'<p class="warn">⚠ {_e(w)}</p>' for w in changes.get("warnings", []))
        d_asr = changes.get("asr") or {}
        rows = [("ASR overall", d_asr.get("overall") or {})]
        rows += [(f"ASR {k}", v) for k, v in (d_asr.get("by_family") or {}).items()]
        rows.append(("FRR overall", (changes.get("frr") or {}).get("overall") or {}))
        b.append(_deltas(rows))
        b.append("<table><tr><th>metric</th><th>previous</th><th>current</th><th>change</th><th>CIs overlap</th></tr>")
        for label, d in rows:
            overlap = {True: "yes", False: "no (beyond noise)", None: "–"}[d.get("ci_overlap")]
            delta = "–" if d.get("delta") is None else f"{d['delta'] * 100:+.1f} pp"
            b.append(
                f"<tr><td>{_e(label)}</td><td>{_pct(d.get('previous'))}</td><td>{_pct(d.get('current'))}</td>"
                f"<td>{delta}</td><td>{overlap}</td></tr>"
            )
        b.append("</table>")
    b.append(f"<h2>Successful attacks ({'ids only' if mode == 'model' else 'passed the firewall'})</h2>")
    b.append(_hits(attempts, mode))
    b.append("</body></html>\n")
    return "\n".join(b)

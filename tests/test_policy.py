"""Policy files: schema errors name the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bartizan.detectors.base import DetectorConfig
from bartizan.detectors.registry import Registry
from bartizan.policy.loader import PolicyError, default_policy, load_policy, load_policy_text
from bartizan.types import Role


class LimitConfig(DetectorConfig):
    limit: int = 3


def registry() -> Registry:
    reg = Registry()
    reg.register("alpha", config=LimitConfig, categories=("one", "two"))(lambda ctx, cfg: [])
    reg.register("beta")(lambda ctx, cfg: [])
    return reg


def errors(text: str) -> list[str]:
    with pytest.raises(PolicyError) as exc:
        load_policy_text(text, "p.yaml", registry())
    return [str(i) for i in exc.value.issues]


def test_valid_policy_loads() -> None:
    p = load_policy_text(
        "name: t\ndetectors:\n  alpha: {roles: [user, tool], config: {limit: 5}}\n", registry=registry()
    )
    assert p.detectors["alpha"].roles == (Role.USER, Role.TOOL)
    assert p.detectors["alpha"].config == {"limit": 5}


def test_star_means_every_role() -> None:
    p = load_policy_text("detectors:\n  beta: {roles: '*'}\n", registry=registry())
    assert set(p.detectors["beta"].roles) == set(Role)


def test_bad_value_names_line_and_key() -> None:
    got = errors("name: t\ndetectors:\n  alpha:\n    threshold: 1.5\n")
    assert got == ["p.yaml:4: detectors.alpha.threshold: Input should be less than or equal to 1"]


def test_unknown_key_is_an_error() -> None:
    got = errors("detectors:\n  alpha:\n    treshold: 0.2\n")
    assert got == ["p.yaml:3: detectors.alpha.treshold: unknown key"]


def test_bad_role_and_action() -> None:
    got = errors("detectors:\n  alpha:\n    roles: [user, robot]\n    action: nuke\n")
    assert any(e.startswith("p.yaml:3: detectors.alpha.roles[1]:") for e in got)
    assert any(e.startswith("p.yaml:4: detectors.alpha.action:") for e in got)


def test_unknown_detector_and_category() -> None:
    got = errors("detectors:\n  alpha:\n    categories: {three: block}\n  gamma: {}\n")
    assert any(e.startswith("p.yaml:4: detectors.gamma: unknown detector") for e in got)
    assert any(e.startswith("p.yaml:3: detectors.alpha.categories.three: unknown category") for e in got)


def test_detector_config_is_checked_against_its_schema() -> None:
    got = errors("detectors:\n  alpha:\n    config:\n      limit: many\n")
    assert got[0].startswith("p.yaml:4: detectors.alpha.config.limit:")


def test_yaml_syntax_error_is_located() -> None:
    got = errors("detectors:\n  alpha: {roles: [user\n")
    assert got[0].startswith("p.yaml:3:") and "invalid YAML" in got[0]


def test_files_and_unreadable_paths(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(missing)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(binary)


def test_default_policy_is_valid_and_covers_every_role() -> None:
    p = default_policy()
    assert p.name == "default"
    for role in Role:
        assert any(role in d.roles for d in p.detectors.values())
    assert load_policy(None) is p

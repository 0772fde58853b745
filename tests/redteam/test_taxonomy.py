"""ATLAS/OWASP tags of red-team cases: every id exists in the pinned data and in governance.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bartizan.redteam import taxonomy
from bartizan.redteam.cases import FAMILIES

GOVERNANCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "governance.md"


@pytest.fixture(scope="module")
def catalog(shared_datasets: Path) -> taxonomy.AtlasCatalog:
    return taxonomy.load_atlas(shared_datasets / "mitre_atlas" / "ATLAS.yaml")


def test_pinned_atlas_counts(catalog: taxonomy.AtlasCatalog) -> None:
    assert catalog.version == "5.6.0"
    assert len(catalog.techniques) == 170
    assert len(catalog.tactics) == 16
    assert catalog.name("AML.T0051.000") == "LLM Prompt Injection: Direct"
    assert catalog.name("AML.T0054") == "LLM Jailbreak"


def test_every_family_mapping_exists(catalog: taxonomy.AtlasCatalog) -> None:
    taxonomy.verify_mappings(catalog)
    assert set(taxonomy.FAMILY_ATLAS) == set(FAMILIES) == set(taxonomy.FAMILY_OWASP)
    for fam in FAMILIES:
        atlas, owasp = taxonomy.family_tags(fam)
        assert (atlas == ()) == (fam == "benign")
        assert all(re.fullmatch(r"LLM\d\d:2025", o) for o in owasp)


def test_unknown_ids_rejected(catalog: taxonomy.AtlasCatalog) -> None:
    with pytest.raises(taxonomy.TaxonomyError, match="AML.T9999"):
        taxonomy.check_ids(("AML.T9999",), (), catalog)
    with pytest.raises(taxonomy.TaxonomyError, match="LLM01"):
        taxonomy.check_ids((), ("LLM01",), catalog)


def test_unknown_format_rejected() -> None:
    with pytest.raises(taxonomy.TaxonomyError, match="version"):
        taxonomy.parse_atlas({"version": "6.0.0", "matrices": []})
    with pytest.raises(taxonomy.TaxonomyError, match="matrices"):
        taxonomy.parse_atlas({"version": "5.6.0"})
    with pytest.raises(taxonomy.TaxonomyError, match="cannot read"):
        taxonomy.load_atlas(Path("/nonexistent/ATLAS.yaml"))


def test_injection_atlas() -> None:
    assert taxonomy.injection_atlas("direct", "persuasion") == ("AML.T0051.000",)
    assert taxonomy.injection_atlas("indirect", "token_smuggling") == ("AML.T0051.001", "AML.T0068")


def test_owasp_names_match_governance_reference() -> None:
    if not GOVERNANCE.is_file():
        pytest.skip("../shared/reference/governance.md is not beside this checkout")
    rows = re.findall(r"^\| (LLM\d\d) \| ([^|]+?) \|", GOVERNANCE.read_text(encoding="utf-8"), re.MULTILINE)
    table = {f"{i}:2025": name for i, name in rows[:10]}
    assert table == taxonomy.OWASP_LLM_2025


def test_describe(catalog: taxonomy.AtlasCatalog) -> None:
    assert taxonomy.describe(("AML.T0056",), catalog) == [{"id": "AML.T0056", "name": "Extract LLM System Prompt"}]

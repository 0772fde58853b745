"""The `insecure_code` detector and its CodeShield rule data: conversion, safe patterns, the literal prefilter,
language selection from code fences, unfenced code, evidence, false positives on benign code prompts."""

from __future__ import annotations

import json
import re
import time
from importlib import resources
from pathlib import Path
from re import _constants as sre_c  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

import pytest
import yaml

from bartizan import taxonomy as tx
from bartizan.detectors import insecure_code as ic
from bartizan.detectors.base import ScanContext
from bartizan.detectors.registry import default_registry
from bartizan.pipeline import Firewall
from bartizan.text.views import TextViews
from bartizan.types import Finding, Message, Role, Verdict

ALL_RULES = ic.rules_for(ic.ALL)
FENCE = "```"


def scan(text: str, **config: object) -> list[Finding]:
    detector = default_registry.get("insecure_code").build(config)
    return detector.scan(ScanContext(Message(role=Role.ASSISTANT, content=text), TextViews(text)))


def ids(findings: list[Finding]) -> set[str]:
    return {f.rule_id or "" for f in findings}


def block(language: str, code: str) -> str:
    return f"Here is the code:\n{FENCE}{language}\n{code}\n{FENCE}\nHope it helps."


# --- rule data ----------------------------------------------------------------------------------------
def test_every_codeshield_rule_was_converted() -> None:
    assert len(ALL_RULES) == 113
    assert len({r.id for r, _ in ALL_RULES}) == 113
    assert {r.language for r, _ in ALL_RULES} == {*ic.LANGUAGES, ic.AGNOSTIC}
    for rule, _ in ALL_RULES:
        assert rule.category == "insecure_code" and re.fullmatch(r"CWE-\d+", rule.cwe_id)
        assert rule.score == {"error": 0.9, "warning": 0.6, "advice": 0.3}[rule.severity]
        assert rule.id == f"codeshield.{rule.language}.{rule.pattern_id}" or rule.id.endswith("-2")
        assert not rule.ignore_case  # CodeShield matches case-sensitively
        assert bool(rule.upstream_pattern) == bool(rule.change)


def test_rule_files_carry_the_mit_notice() -> None:
    folder = resources.files("bartizan.rules").joinpath("codeshield")
    files = [f for f in folder.iterdir() if f.name.endswith(".yaml")]
    assert len(files) == 13
    for f in files:
        head = f.read_text(encoding="utf-8")[:3000]
        assert "meta-llama/PurpleLlama" in head and "MIT License" in head and "Meta Platforms" in head


def test_rewritten_rules_still_match_what_upstream_matched() -> None:
    samples = {
        "codeshield.c.bugprone-scanf": 'scanf("%s", name);',
        "codeshield.cpp.fixed-seed-prng-usage": "auto gen = std::mt19937(42);",
        "codeshield.cpp.xml-external-entity-usage": "xmlReadDoc(cur, url, enc, XML_PARSE_NOENT)",
        "codeshield.java.deprecated-ecb-usage": 'Cipher.getInstance("AES/ECB/PKCS5Padding")',
        "codeshield.java.potential-command-injection": "Runtime.getRuntime().exec(cmd)",
        "codeshield.php.missing-secure-cookie": 'setcookie("id", $v, 0, "/", "", false, false)',
        "codeshield.php.hash-without-salt": "password_hash($p, PASSWORD_DEFAULT)",
        "codeshield.swift.SWIFT-R-006": "class Foo: NSObject, NSCoding {",
        "codeshield.swift.SWIFT-R-008": "let s = [kCFStreamSSLAllowsAnyRoot: NSNumber(value: true)]",
        "codeshield.language_agnostic.ALL-R-009": "-----BEGIN RSA PRIVATE KEY-----\n"
        + "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
        + "-----END RSA PRIVATE KEY-----",
    }
    by_id = {r.id: r for r, _ in ALL_RULES}
    for rule_id, sample in samples.items():
        rule = by_id[rule_id]
        assert re.search(rule.upstream_pattern, sample), rule_id
        assert re.search(rule.pattern, sample), rule_id


def _prefixes(items: list[tuple[object, object]]) -> tuple[list[str], bool]:
    """Literal strings one of which starts every match of a parsed pattern (and whether it is complete)."""
    out = [""]
    for op, av in items:
        if op in (sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT):
            continue
        if op is sre_c.LITERAL:
            out = [p + chr(av) for p in out]  # type: ignore[arg-type]
        elif op is sre_c.SUBPATTERN or op is sre_c.BRANCH:
            alternatives = [av[3]] if op is sre_c.SUBPATTERN else av[1]  # type: ignore[index]
            tails, complete = [], True
            for alt in alternatives:
                sub, done = _prefixes(list(alt))
                tails += sub
                complete = complete and done
            out = [p + t for p in out for t in tails]
            if not complete:
                return out, False
        else:
            return out, False
    return out, True


@pytest.mark.parametrize("rule", [r for r, _ in ALL_RULES if r.literals], ids=lambda r: r.id)
def test_literals_start_every_match(rule: ic.CodeShieldRule) -> None:
    prefixes, _ = _prefixes(list(sre_parse.parse(rule.pattern)))
    assert all(any(p.startswith(lit) for lit in rule.literals) for p in prefixes)


def test_literal_prefilter_finds_what_finditer_finds() -> None:
    corpus = "\n".join(
        [
            "strcpy(a, b); gets(buf); x = hashlib.md5(d); hashlib.new('sha1')",
            'Cipher.getInstance("DES/ECB/NoPadding"); EVP_des_ede3_cbc(); EVP_aes_128_ecb();',
            "echo($_GET['x']); system($_POST['c']); md5($x); setcookie('a', $b, 0, '/', '', false, false);",
            "shell_exec($_GET['c']); unserialize($_POST['d']); mt_rand($seed); Md5::new() MessageDigest::md5",
            "ghp_" + "A1b2" * 9 + " AIza" + "x" * 35 + " unsafe { } Command::new(cmd)",
            "-----BEGIN PRIVATE KEY-----\n" + "QUJD" * 20 + "\n-----END PRIVATE KEY-----",
        ]
    )
    for rule, rx in ALL_RULES:
        expected = [m.span() for m in rx.finditer(corpus) if m.end() > m.start()]
        assert [m.span() for m in rule.matches(rx, corpus, 0, len(corpus))] == expected, rule.id


@pytest.mark.parametrize("rule", [r for r, _ in ALL_RULES], ids=lambda r: r.id)
def test_no_rule_backtracks_on_repeated_prefixes(rule: ic.CodeShieldRule) -> None:
    rx = re.compile(rule.pattern)
    seeds = rule.literals or ("---BEGIN",)
    for lit in seeds[:3]:
        for unit in (lit, lit + "(", lit + " ", lit + "0", lit + "("):
            text = (unit * (100_000 // len(unit) + 1))[:100_000]
            t0 = time.perf_counter()
            for _ in rx.finditer(text):
                pass
            assert time.perf_counter() - t0 < 0.5, (rule.id, unit)


# --- language selection -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("language", "code", "rule_id"),
    [
        ("python", "import hashlib\nh = hashlib.md5(data).hexdigest()", "codeshield.python.insecure-md5-hash-usage"),
        ("py", "hashlib.new('sha1')", "codeshield.python.insecure-hash-function-usage"),
        ("c", "char buf[8];\nstrcpy(buf, input);", "codeshield.c.bugprone-strcpy"),
        ("cpp", "char b[4];\ngets(b);", "codeshield.c.bugprone-gets"),  # C rules apply to C++
        ("c++", "std::auto_ptr<Foo> p(new Foo);", "codeshield.cpp.deprecated-auto_ptr-usage"),
        ("java", 'Cipher c = Cipher.getInstance("AES/ECB/PKCS5Padding");', "codeshield.java.deprecated-ecb-usage"),
        ("kotlin", 'val md = MessageDigest.getInstance("MD5")', "codeshield.java.weak-md5-hashing"),
        ("js", "fetch('http://api.example.com/data')", "codeshield.javascript.unencrypted-fetch-usage"),
        ("php", "<?php\n$o = unserialize($_GET['data']);", "codeshield.php.untrusted-data-deserialization"),
        ("ruby", "Open3.popen3(cmd)", "codeshield.ruby.RUBY-R-001"),
        ("rust", "let out = Command::new(prog).output();", "codeshield.rust.RUST-R-002"),
        ("swift", "let web = UIWebView()", "codeshield.swift.SWIFT-R-005"),
        ("objc", "CC_MD5(data, len, digest);", "codeshield.objective_c.OBJC-R-003"),
        ("xml", '<application android:debuggable="true">', "codeshield.xml.XML-R-001"),
        (
            "xml",
            '<system.web><pages enableViewStateMac="false" /></system.web>',
            "codeshield.csharp.viewstate-mac-disabled",
        ),
        (
            "bash",
            "export HEROKU_API_KEY=" + "0123456789abcdef" * 2 + "01234567",
            "codeshield.language_agnostic.ALL-R-015",
        ),
        ("", "char b[4];\ngets(b);", "codeshield.c.bugprone-gets"),  # untagged: every rule
    ],
)
def test_fenced_code_gets_its_language_rules(language: str, code: str, rule_id: str) -> None:
    text = block(language, code)
    found = {f.rule_id: f for f in scan(text)}
    assert rule_id in found, found
    f = found[rule_id]
    start = text.index(code)
    assert all(start <= s.start < s.end <= start + len(code) for s in f.spans)
    assert f.owasp == (tx.LLM05,) and f.atlas == ()
    rule = next(r for r, _ in ALL_RULES if r.id == rule_id)
    assert f.score == rule.score and rule.cwe_id in f.evidence and rule.pattern_id in f.evidence


def test_rules_of_another_language_do_not_apply() -> None:
    assert scan(block("javascript", "const h = hashlib.md5(x)")) == []
    assert scan(block("text", "strcpy(a, b)")) == []


def test_spans_point_at_the_insecure_call() -> None:
    text = block("c", "int main() {\n  char b[8];\n  strcpy(b, argv[1]);\n}")
    (f,) = scan(text)
    assert text[f.spans[0].start : f.spans[0].end] == "strcpy("


def test_several_blocks_and_an_unclosed_one() -> None:
    text = block("python", "x = 1") + "\nand\n~~~c\ngets(buf);\n~~~\nthen\n```php\necho md5($x);"
    assert ids(scan(text)) == {"codeshield.c.bugprone-gets", "codeshield.php.risky-crypto-algorithm"}


def test_credentials_are_never_quoted() -> None:
    token = "ghp_" + "Zq3" * 12
    (f,) = scan(block("python", f'TOKEN = "{token}"'))
    assert f.rule_id == "codeshield.language_agnostic.ALL-R-010"
    assert token not in f.evidence and "Zq3Zq3" not in f.evidence


# --- unfenced text ------------------------------------------------------------------------------------
def test_unfenced_code_gets_every_rule() -> None:
    code = (
        "#include <string.h>\nint main(int argc, char **argv) {\n  char b[8];\n  strcpy(b, argv[1]);\n  return 0;\n}\n"
    )
    (f,) = scan(code)
    assert f.rule_id == "codeshield.c.bugprone-strcpy" and "unfenced code" in f.evidence


@pytest.mark.parametrize(
    "text",
    [
        "Why is strcpy( considered unsafe, and should I use hashlib.md5( for passwords?",
        "In PHP, md5($x) is weak.\nUse password_hash instead.\nThanks!",
        "Explain what Runtime.getRuntime().exec does in one paragraph.",
    ],
)
def test_prose_that_mentions_functions_is_not_scanned(text: str) -> None:
    assert scan(text) == []


def test_unfenced_scanning_can_be_switched_off() -> None:
    assert scan("#include <stdio.h>\nint main() {\n  gets(b);\n}\n", scan_unfenced=False) == []


def test_upstream_enabled_only() -> None:
    text = block("c", "strcpy(a, b);\ngets(buf);")
    assert ids(scan(text)) == {"codeshield.c.bugprone-strcpy", "codeshield.c.bugprone-gets"}
    assert ids(scan(text, upstream_enabled_only=True)) == {"codeshield.c.bugprone-gets"}


# --- pipeline, benign data, cost ----------------------------------------------------------------------
def test_default_policy_flags_insecure_code_in_answers_only() -> None:
    fw = Firewall()
    text = block("c", "char b[8];\nstrcpy(b, s);")
    answer = fw.scan(Message(Role.ASSISTANT, text))
    assert answer.verdict is Verdict.FLAG and any(f.detector == "insecure_code" for f in answer.findings)
    assert "insecure_code" not in fw.scan(Message(Role.USER, text)).detectors
    assert fw.scan(Message(Role.ASSISTANT, block("python", "print(sum(range(10)))"))).verdict is Verdict.ALLOW


def test_benign_code_prompts_are_quiet(shared_datasets: Path) -> None:
    texts = []
    for name in ("mbpp.jsonl", "humaneval_multipl_e.jsonl"):
        with open(shared_datasets / "benign_prompts" / "data" / name, encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh]
    counted = sum(1 for t in texts for f in scan(t) if f.score >= 0.5)
    assert len(texts) > 1000 and counted / len(texts) <= 0.002


def test_rule_files_parse_as_plain_yaml() -> None:
    folder = resources.files("bartizan.rules").joinpath("codeshield")
    data = yaml.safe_load(folder.joinpath("python.yaml").read_text(encoding="utf-8"))
    assert data["license"].startswith("MIT") and data["source"].startswith("meta-llama/PurpleLlama@")


@pytest.mark.parametrize("unit", ["```\n", "```\nx = 1\n```\n", "```c\nstrcpy(\n```\n", "```c\ngets(", "EVP_"])
def test_many_blocks_stay_cheap(unit: str) -> None:
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    scan("warm up")
    t0 = time.perf_counter()
    scan(text)
    assert time.perf_counter() - t0 < 1.0

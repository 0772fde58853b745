"""Framework references carried by findings: MITRE ATLAS technique ids and OWASP LLM Top 10 ids with year.

OWASP ids always carry the list's year (``LLM01:2025``): the 2026 list renumbers several entries, so a
bare ``LLM05`` is ambiguous (see ../shared/reference/governance.md). ATLAS ids are from ATLAS 5.6.0.
"""

from __future__ import annotations

ATLAS_VERSION = "5.6.0"
OWASP_YEAR = 2025

# MITRE ATLAS techniques
PROMPT_INJECTION = "AML.T0051"
DIRECT_INJECTION = "AML.T0051.000"
INDIRECT_INJECTION = "AML.T0051.001"
TOOL_INVOCATION = "AML.T0053"
JAILBREAK = "AML.T0054"
UNSECURED_CREDENTIALS = "AML.T0055"
SYSTEM_PROMPT_EXTRACTION = "AML.T0056"
DATA_LEAKAGE = "AML.T0057"
PROMPT_OBFUSCATION = "AML.T0068"
RESPONSE_RENDERING = "AML.T0077"
TOOL_EXFILTRATION = "AML.T0086"
DENIAL_OF_SERVICE = "AML.T0029"
COST_HARVESTING = "AML.T0034"

# OWASP LLM Top 10, 2025 edition
LLM01 = "LLM01:2025"  # Prompt Injection
LLM02 = "LLM02:2025"  # Sensitive Information Disclosure
LLM05 = "LLM05:2025"  # Improper Output Handling
LLM06 = "LLM06:2025"  # Excessive Agency
LLM07 = "LLM07:2025"  # System Prompt Leakage
LLM10 = "LLM10:2025"  # Unbounded Consumption

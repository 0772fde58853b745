"""A2AS BASIC runtime controls: boundaries, authenticated prompts, defenses, codified policies, certificates."""

"""OpenAI-compatible security gateway."""

"""Agent SDK: the tool-call firewall hook and a guard for the official openai client."""

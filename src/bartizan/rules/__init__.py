"""Rule data shipped with bartizan (signatures, secret patterns, code rules) and its typed loader."""

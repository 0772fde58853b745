"""Red-team harness: attack library, transformations, judges, runs and reports."""

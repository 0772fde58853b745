"""Evaluation of detectors and policies on labelled data: exact metrics (`metrics`) and the runner behind
`bartizan eval` (`runner`). Nothing here loads a model or data set at import time."""

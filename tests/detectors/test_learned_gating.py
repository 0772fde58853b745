"""The gated views' languageness shortcut: ROT13 and reversed views scored from the normalized text's words."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.detectors import learned
from bartizan.text.views import TextViews

WORDS = ["the", "and", "how", "tell", "Gur", "naq", "ubj", "eht", "woh", "Ignore", "x1_y", "don't", "ÉtÉ", "İ", "K"]
texts = st.lists(
    st.tuples(st.sampled_from(WORDS) | st.text(max_size=6), st.sampled_from([" ", "\n", ". ", "-"])), max_size=400
).map(lambda pairs: "".join(w + s for w, s in pairs))


@settings(max_examples=300, deadline=None)
@given(texts)
def test_gated_languageness_equals_languageness_of_the_view(text: str) -> None:
    views = TextViews(text)
    base = views.normalized
    words = learned._sample_words(base.text)
    for name in ("rot13", "reversed"):
        view = getattr(views, name)
        if view is not None:
            assert learned._gated_languageness(name, view, base.text, words) == learned.languageness(view.text)

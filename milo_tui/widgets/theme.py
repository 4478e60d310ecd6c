"""The dashboard's colours by what they mean, as the theme's variables.

Markup drawn by Textual (`Static.update`, border titles) and the stylesheet take `$error` as it is; Rich
Text built in Python (table cells, chart lines) needs a colour Rich can draw, which `themed` makes from the
app's current theme. A theme change thus recolours everything, and no colour is written twice.
"""
from __future__ import annotations

from textual.color import Color

from milo_tui.chart import ChartColours

ERROR = "$text-error"
WARNING = "$text-warning"
SUCCESS = "$text-success"
INFO = "$text-primary"
MUTED = "$foreground-muted"  # "$text-muted" is "auto 60%": a contrast rule, not a colour Rich can take

CHART = ChartColours(objective=INFO, layer_sum="$accent", validation=ERROR, overlay=SUCCESS, axis=MUTED)

_resolved: tuple[dict, dict[str, str]] = ({}, {})  # (the theme's variables, style -> Rich style) for the last theme


def themed(app, style: str) -> str:
    """`style` (Textual's style words: "bold $text-success") with each `$variable` made a colour of the app's
    theme; a translucent one is mixed over the theme's background, as the screen would show it."""
    global _resolved
    variables = app.theme_variables or app.get_css_variables()
    if _resolved[0] is not variables:  # a new dict on every theme change
        _resolved = (variables, {})
    cache = _resolved[1]
    if style not in cache:
        words = []
        for word in style.split():
            if word.startswith("$"):
                colour = Color.parse(variables[word[1:]])
                if colour.a < 1:
                    colour = Color.parse(variables["background"]) + colour
                word = colour.hex
            words.append(word)
        cache[style] = " ".join(words)
    return cache[style]


def chart_colours(app) -> ChartColours:
    """The chart's colours in the app's theme."""
    return ChartColours(*(themed(app, style) for style in CHART))

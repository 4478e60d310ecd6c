"""The loss chart and the per-layer small multiples."""
from __future__ import annotations

from milo_tui.chart import layer_rows, loss_chart, trend_rows
from milo_tui.widgets.lines import LinesWidget
from milo_tui.widgets.theme import CHART, chart_colours, themed


class LossChart(LinesWidget, can_focus=True):
    """Objective and 16-layer sum over steps, validation points, one overlaid layer."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.points, self.validations = [], []
        self.smooth, self.overlay, self.ascii = False, None, False

    def show(self, points, validations, *, smooth: bool, overlay: int | None, ascii: bool) -> None:
        self.points, self.validations = points, validations
        self.smooth, self.overlay, self.ascii = smooth, overlay, ascii
        legend = (f"[{CHART.objective}]objective[/] [{CHART.layer_sum}]layer sum[/] "
                  f"[{CHART.validation}]{'*' if ascii else '◆'} val[/]")
        if overlay is not None:
            legend += f" [{CHART.overlay}]layer {overlay}[/]"
        title = f"Loss{' (smoothed)' if smooth else ''}  {legend}"
        if title != self.border_title:
            self.border_title = title
        self.redraw()

    def lines(self, width: int, height: int):
        return loss_chart(self.points, self.validations, width, height, smooth=self.smooth, overlay=self.overlay,
                          ascii=self.ascii, colours=chart_colours(self.app))


class LayerPanel(LinesWidget, can_focus=True):
    """One labelled sparkline per codebook layer with its latest value (in columns when short)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.points, self.overlay, self.ascii = [], None, False
        self.border_title = "Layers"

    def show(self, points, *, overlay: int | None, ascii: bool) -> None:
        self.points, self.overlay, self.ascii = points, overlay, ascii
        self.redraw()

    def lines(self, width: int, height: int):
        return layer_rows(self.points, width, height, overlay=self.overlay, ascii=self.ascii,
                          colours=chart_colours(self.app))


# The trend panel's measures: (score name, label, colour, format)
TREND = (("similarity", "sim", CHART.overlay, ".2f"), ("wer", "WER", CHART.validation, ".2f"),
         ("rate_ratio", "rate", CHART.layer_sum, ".2f"))


class TrendPanel(LinesWidget, can_focus=True):
    """The scores per epoch (similarity, WER, speaking rate against the corpus), each against the baseline."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.series, self.ascii = [], False
        self.border_title = "Scores per epoch"

    def show(self, checkpoints, baseline: dict | None, *, ascii: bool) -> None:
        from contract.scores import is_score

        series = []
        for key, label, style, fmt in TREND:
            points = sorted((c.epoch, float(c.scores[key])) for c in checkpoints
                            if c.epoch is not None and c.scores and is_score(c.scores.get(key)))
            base = (baseline or {}).get(key)
            series.append((label, themed(self.app, style), points, float(base) if is_score(base) else None, fmt))
        if series != self.series or ascii != self.ascii:
            self.series, self.ascii = series, ascii
            self.redraw()

    def lines(self, width: int, height: int):
        return trend_rows(self.series, width, height, ascii=self.ascii, colours=chart_colours(self.app))

"""Terminal charts drawn by us: a braille (or ASCII) canvas, downsampling to the canvas width, EMA
smoothing, sparklines. Pure functions returning Rich Text, so they are tested without a screen; the widget
passes the theme's colours (milo_tui/widgets/theme.py).
"""
from __future__ import annotations

import math
from typing import Iterable, NamedTuple, Sequence

from rich.text import Text

from contract.runfolder import NUM_LAYERS


class ChartColours(NamedTuple):
    """The Rich styles of a chart's parts; without them a chart is drawn in the default colour."""
    objective: str = ""
    layer_sum: str = ""
    validation: str = ""
    overlay: str = ""
    axis: str = ""


PLAIN = ChartColours()

# braille dot bits by [row][column] inside a 2x4 cell
_BRAILLE = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
SPARK = "▁▂▃▄▅▆▇█"
SPARK_ASCII = "_.-:=+*#"


class Canvas:
    """A grid of cells, each 2x4 braille dots (or 1x3 ASCII dots); one colour per cell (the last drawn)."""

    def __init__(self, width: int, height: int, ascii: bool = False) -> None:
        self.width, self.height, self.ascii = max(1, width), max(1, height), ascii
        self.dx, self.dy = (1, 3) if ascii else (2, 4)
        self.px_w, self.px_h = self.width * self.dx, self.height * self.dy
        self.bits = [[0] * self.width for _ in range(self.height)]
        self.styles: list[list[str | None]] = [[None] * self.width for _ in range(self.height)]
        self.marks: dict[tuple[int, int], tuple[str, str]] = {}

    def dot(self, x: int, y: int, style: str) -> None:
        if 0 <= x < self.px_w and 0 <= y < self.px_h:
            col, row = x // self.dx, y // self.dy
            bit = (1 << (y % 3)) if self.ascii else _BRAILLE[y % 4][x % 2]
            self.bits[row][col] |= bit
            self.styles[row][col] = style

    def line(self, x0: int, y0: int, x1: int, y1: int, style: str) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps), style)

    def polyline(self, pts: Sequence[tuple[int, int]], style: str) -> None:
        if len(pts) == 1:
            self.dot(*pts[0], style)
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            self.line(x0, y0, x1, y1, style)

    def mark(self, x: int, y: int, char: str, style: str) -> None:
        """A character over a cell (validation points), at pixel coordinates."""
        if 0 <= x < self.px_w and 0 <= y < self.px_h:
            self.marks[(y // self.dy, x // self.dx)] = (char, style)

    def _char(self, bits: int) -> str:
        if not self.ascii:
            return chr(0x2800 + bits) if bits else " "
        return {0: " ", 1: "'", 2: "-", 4: ".", 5: ":"}.get(bits, "|")

    def rows(self) -> list[Text]:
        """One Text per row; runs of cells with the same style become one span (cheap to render)."""
        out = []
        for r in range(self.height):
            text = Text()
            run_style, run = "", []
            for c in range(self.width):
                mark = self.marks.get((r, c))
                char, style = mark if mark else (self._char(self.bits[r][c]), self.styles[r][c] or "")
                if style != run_style and run:
                    text.append("".join(run), run_style)
                    run = []
                run_style = style
                run.append(char)
            if run:
                text.append("".join(run), run_style)
            out.append(text)
        return out


def ema(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with TensorBoard's debiasing, so the start is not pulled to zero."""
    out, acc, n = [], 0.0, 0
    for v in values:
        if math.isfinite(v):
            n += 1
            acc = acc * weight + (1 - weight) * v
            out.append(acc / (1 - weight ** n))
        else:
            out.append(v)
    return out


def downsample(xs: Sequence[float], ys: Sequence[float], x0: float, x1: float, n: int) -> list[tuple[int, float]]:
    """(bucket, mean y) for `n` equal buckets over [x0, x1]; empty buckets are left out."""
    if n <= 0 or not xs:
        return []
    span = (x1 - x0) or 1.0
    sums: dict[int, list[float]] = {}
    for x, y in zip(xs, ys):
        if y is None or not math.isfinite(y):
            continue
        b = min(n - 1, max(0, int((x - x0) / span * (n - 1) + 0.5)))
        acc = sums.setdefault(b, [0.0, 0])
        acc[0] += y
        acc[1] += 1
    return [(b, s / c) for b, (s, c) in sorted(sums.items())]


def decimate(points: Sequence, limit: int) -> Sequence:
    """At most about `limit` points, taken evenly (the last one kept): what a chart of a given width
    can show, before averaging into pixel columns."""
    if len(points) <= limit:
        return points
    stride = len(points) / limit
    picked = [points[int(i * stride)] for i in range(limit)]
    picked[-1] = points[-1]
    return picked


def _range(values: Iterable[float]) -> tuple[float, float] | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-9:
        pad = abs(hi) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    return lo, hi


def fmt_value(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"


def fmt_steps(v: float) -> str:
    v = int(round(v))
    if v >= 1_000_000:
        return f"{v / 1e6:.1f}M"
    if v >= 10_000:
        return f"{v / 1e3:.0f}k"
    return str(v)


def loss_chart(points, validations, width: int, height: int, *, smooth: bool = False, overlay: int | None = None,
               ascii: bool = False, colours: ChartColours = PLAIN) -> list[Text]:
    """The main chart: objective (left axis, with the overlaid layer), 16-layer sum (right axis),
    validation points; about two points per column. Returns `height` lines of `width` cells."""
    label_w = 7
    plot_w, plot_h = width - 2 * label_w, height - 1
    if plot_w < 8 or plot_h < 2:
        return [Text("(too small)", colours.axis)][:height]
    if not points:
        lines = [Text(" " * width) for _ in range(height)]
        lines[height // 2] = Text("waiting for the first step…".center(width), colours.axis)
        return lines
    points = decimate(points, plot_w * 8)  # four points per braille dot column, averaged below
    xs = [p.step for p in points]
    x0, x1 = xs[0], xs[-1] if xs[-1] > xs[0] else xs[0] + 1
    objective = [p.objective for p in points]
    layer_sum = [p.layer_sum for p in points]
    layer = [p.layers[overlay] if p.layers else float("nan") for p in points] if overlay is not None else None
    if smooth:
        objective, layer_sum = ema(objective), ema(layer_sum)
        layer = ema(layer) if layer is not None else None
    canvas = Canvas(plot_w, plot_h, ascii)
    n = canvas.px_w
    left_series = [downsample(xs, objective, x0, x1, n)]
    if layer is not None:
        left_series.append(downsample(xs, layer, x0, x1, n))
    right_series = downsample(xs, layer_sum, x0, x1, n)
    vals = [v for v in validations if x0 <= v.step <= x1 or len(points) == 1]
    left = _range([y for s in left_series for _b, y in s] + [v.objective for v in vals]) or (0.0, 1.0)
    right = _range([y for _b, y in right_series] + [v.layer_sum for v in vals if v.layer_sum is not None]) or (0.0, 1.0)

    def py(y: float, rng: tuple[float, float]) -> int:
        return round((1 - (y - rng[0]) / (rng[1] - rng[0])) * (canvas.px_h - 1))

    def px(step: float) -> int:
        return round((step - x0) / ((x1 - x0) or 1) * (n - 1))

    canvas.polyline([(b, py(y, right)) for b, y in right_series], colours.layer_sum)
    canvas.polyline([(b, py(y, left)) for b, y in left_series[0]], colours.objective)
    if layer is not None:
        canvas.polyline([(b, py(y, left)) for b, y in left_series[1]], colours.overlay)
    for v in vals:
        if v.layer_sum is not None:
            canvas.mark(px(v.step), py(v.layer_sum, right), "o" if ascii else "◇", colours.layer_sum)
        canvas.mark(px(v.step), py(v.objective, left), "*" if ascii else "◆", colours.validation)
    rows = canvas.rows()
    out = []
    for r, row in enumerate(rows):
        frac = 1 - r / max(1, plot_h - 1)
        show = r in (0, plot_h - 1) or (plot_h >= 6 and r == plot_h // 2)
        lv = fmt_value(left[0] + frac * (left[1] - left[0])) if show else ""
        rv = fmt_value(right[0] + frac * (right[1] - right[0])) if show else ""
        line = Text(lv.rjust(label_w - 1) + " ", colours.objective)
        line.append_text(row)
        line.append(" " + rv.ljust(label_w - 1), colours.layer_sum)
        out.append(line)
    ticks = [fmt_steps(x0), fmt_steps((x0 + x1) / 2), fmt_steps(x1)]
    axis = [" "] * plot_w
    for pos, label in ((0, ticks[0]), ((plot_w - len(ticks[1])) // 2, ticks[1]), (plot_w - len(ticks[2]), ticks[2])):
        axis[max(0, pos):max(0, pos) + len(label)] = label
    out.append(Text(" " * label_w + "".join(axis)[:plot_w] + " step".ljust(label_w), colours.axis))
    return out


def sparkline(values: Sequence[float], width: int, ascii: bool = False, lo: float | None = None,
              hi: float | None = None) -> str:
    """`width` characters, the values averaged into as many buckets, scaled to their own range."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if width <= 0 or not vals:
        return " " * max(0, width)
    if len(vals) > width:
        buckets = downsample(range(len(vals)), vals, 0, len(vals) - 1, width)
        vals = [y for _b, y in buckets]
    lo = min(vals) if lo is None else lo
    hi = max(vals) if hi is None else hi
    ramp = SPARK_ASCII if ascii else SPARK
    if hi - lo < 1e-12:  # a flat series sits in the middle, not on the floor
        lo, hi = lo - 1.0, hi + 1.0
    span = hi - lo
    chars = [ramp[min(len(ramp) - 1, max(0, int((v - lo) / span * (len(ramp) - 1) + 0.5)))] for v in vals]
    return "".join(chars).ljust(width)


def layer_rows(points, width: int, height: int, *, overlay: int | None = None, ascii: bool = False,
               layers: int = NUM_LAYERS, colours: ChartColours = PLAIN) -> list[Text]:
    """Small multiples: one labelled sparkline per layer with its latest value, in as many columns as
    the height needs (16 rows; 2 columns of 8; 4 of 4 ...)."""
    cols = math.ceil(layers / max(1, min(layers, height)))
    per_col = math.ceil(layers / cols)
    col_w = max(12, width // cols)
    spark_w = max(1, col_w - 4 - 8)
    points = decimate([p for p in points if p.layers], spark_w * 4)
    series = [[p.layers[i] for p in points] for i in range(layers)]
    lines = [Text() for _ in range(per_col)]
    for i in range(layers):
        col, row = divmod(i, per_col)
        if col >= cols:
            break
        vals = series[i]
        latest = fmt_value(vals[-1]) if vals else "-"
        style = "reverse" if overlay == i else ""
        cell = Text(f"L{i:<2} ", style or colours.axis)
        cell.append(sparkline(vals, spark_w, ascii), style or colours.objective)
        cell.append(f" {latest:>6} ", style)
        cell.truncate(col_w, pad=True)
        lines[row].append_text(cell)
    return lines


def trend_rows(series, width: int, height: int, *, ascii: bool = False, colours: ChartColours = PLAIN) -> list[Text]:
    """The scores per epoch as stacked small charts, one per measure: `series` is a list of (label, style,
    [(epoch, value)], baseline value or None, format). Each chart gets a title line (latest value, the
    baseline's, and at its right end the plot's y range, bottom..top, when it fits) and a braille plot with
    the baseline as a dotted reference line; with one line per measure, a sparkline."""
    if not any(points for _l, _s, points, _b, _f in series):
        lines = [Text(" " * width) for _ in range(height)]
        if height:
            lines[height // 2] = Text("no scored checkpoint yet".center(width), colours.axis)
        return lines
    per = max(1, height // max(1, len(series)))
    out: list[Text] = []
    for label, style, points, base, fmt in series:
        latest = format(points[-1][1], fmt) if points else "-"
        head = Text(f"{label} ", style)
        head.append(latest, "bold " + style)
        if base is not None:
            head.append(f"  base {format(base, fmt)}", colours.axis)
        if points:
            head.append(f"  @{points[-1][0]}", colours.axis)
        if per == 1:
            spark_w = max(1, width - head.cell_len - 1)
            head.append(" " + sparkline([v for _e, v in points], spark_w, ascii), style)
            out.append(head)
            continue
        rng = _range([v for _e, v in points] + ([base] if base is not None else [])) or (0.0, 1.0)
        scale = f"{format(rng[0], fmt)}..{format(rng[1], fmt)}"  # the plot's y range: its bottom and top rows
        if head.cell_len + 2 + len(scale) <= width:
            head.append(" " * (width - head.cell_len - len(scale)) + scale, colours.axis)
        head.truncate(width, pad=True)
        out.append(head)
        plot_h = per - 1
        canvas = Canvas(width, plot_h, ascii)
        xs = [e for e, _v in points]
        x0, x1 = (xs[0], xs[-1]) if xs else (0, 1)

        def py(y: float) -> int:
            return round((1 - (y - rng[0]) / (rng[1] - rng[0])) * (canvas.px_h - 1))

        def px(x: float) -> int:
            return round((x - x0) / ((x1 - x0) or 1) * (canvas.px_w - 1))

        if base is not None:
            for x in range(0, canvas.px_w, 3):
                canvas.dot(x, py(base), colours.axis)
        canvas.polyline([(px(e), py(v)) for e, v in points], style)
        out.extend(canvas.rows())
    out = out[:height]
    return out + [Text(" " * width) for _ in range(height - len(out))]

"""The checkpoints view of the selected run: the baseline (zero-shot Base) and ceiling (real held-out clips)
rows pinned at the top, then each checkpoint with its validation loss, scores (similarity, WER, DNSMOS
OVRL, speaking rate against the corpus, runaway prompts), what the ears said in the audition screen, its
scoring state, size and time; the best checkpoint by the run's rule (its own, else [best]) is marked and the cursor starts
on it. Rows are updated in place as checkpoints and scores land. `a` auditions, `e` / `E` score, `S` serves
(milo-serve)."""
from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from milo_tui.format import fmt_bytes
from milo_tui.messages import AuditionRequested
from milo_tui.keys import ExplainDisabled
from milo_tui.widgets.tables import PINNED, STATE_WORD, CheckpointsTable, score_state
from milo_tui.widgets.theme import SUCCESS, WARNING


class CheckpointsScreen(ExplainDisabled, Screen):
    AUTO_FOCUS = "#checkpoints"
    BINDINGS = [
        Binding("a", "audition", "Audition", id="audition", tooltip="Listen to the highlighted checkpoint"),
        Binding("e", "score", "Score", id="score", tooltip="Score the highlighted checkpoint now (the run's scorer)"),
        Binding("E", "score_all", "Score all", id="score_all", show=False,
                tooltip="Score every checkpoint of the run that has no scores and is not queued"),
        Binding("S", "serve", "Serve", id="serve",
                tooltip="Serve the highlighted checkpoint with milo-serve on the [serve] port (replacing another asks first)"),
        Binding("P", "prune", "Prune", id="prune",
                tooltip="Delete the checkpoints the retention policy does not keep (asks first, says what goes)"),
        Binding("escape", "back", "Back", id="back", tooltip="Back to the runs"),
        Binding("c", "back", "Back", id="back_c", show=False, tooltip="Back to the runs"),
        # q leaves the screen it is pressed on, on every screen; on the runs view, the outermost, that quits.
        Binding("q", "back", "Back", id="back_q", show=False, tooltip="Back to the runs"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield CheckpointsTable(id="checkpoints", classes="pane")
        yield Static(id="best")
        yield Static(id="why")
        yield Static(id="free")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#checkpoints").border_title = "Checkpoints"
        self.app.mark_dirty("checkpoints")
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.app.mark_dirty("checkpoints"))

    def draw(self, parts: set[str]) -> None:
        if not ({"checkpoints", "runs"} & parts) or not self.is_mounted:
            return
        app = self.app
        run = app.selected_summary()
        checkpoints, free = app.checkpoints.get(app.selected, ((), None))
        judgement = app.judgements.get(app.selected)
        best, why, beats, against = app.judged(app.selected)
        _rule, own = app.best_rule_of(app.selected)  # the run's own rule is named: it is not the configured one
        lora = run is not None and run.method == "lora"
        self.query_one("#title", Static).update(
            f" [b]{escape(run.name)}[/] · {run.status}" + (f" · {run.method_text}" if lora else "")
            + f" · {len(checkpoints)} {'voice bundles' if lora else 'checkpoints'}"
            f" · scorer on {escape(app.scorer_device_of(run.path))}" if run else " no run selected")
        self.query_one(CheckpointsTable).show(checkpoints, judgement, best, ascii=app.ascii)
        mark = "*best" if app.ascii else "\u2605"
        by = f" by {escape(own)}" if own else ""
        line = (f" [b {SUCCESS}]{mark} {escape(best)}[/]{by}: {escape(why)}" if best else
                f" [dim]no best yet{by}: {escape(why)}[/]" if checkpoints else "")
        if lora and checkpoints:
            # a LoRA run is worth its bundles only where one beats cloning zero-shot (issue 26): said plainly
            if beats is False:
                line = (f" [b {WARNING}]no bundle beats zero-shot yet[/]{by}: " +
                        (f"{mark} {escape(best)} {escape(against)}; {escape(why)}" if best else
                         f"{escape(why)}; {escape(against)}"))
            elif beats:
                line = f" [b {SUCCESS}]{mark} {escape(best)} beats zero-shot[/]{by} ({escape(against)}): {escape(why)}"
            elif best:
                line += f"; not compared with zero-shot: {escape(against)}"
        self.query_one("#best", Static).update(line)
        used = app.checkpoints_used.get(app.selected)
        own = sum(c.bytes for c in checkpoints)  # what du counts as each one's own (a bundle shares nothing)
        shared = f" ({fmt_bytes(used - own)} of it shared)" if used is not None and used > own else ""
        self.query_one("#free", Static).update(
            (f" {fmt_bytes(used)} in checkpoints{shared} · " if used is not None else " ")
            + (f"{fmt_bytes(free)} free on this disk" if free is not None else ""))
        self._explain()
        self.refresh_bindings()

    def _explain(self) -> None:
        """The highlighted row's why: what could not be scored, or why its scoring failed."""
        table = self.query_one(CheckpointsTable)
        key = self._row_key()
        app = self.app
        judgement = app.judgements.get(app.selected)
        text = ""
        if key in PINNED:
            row = getattr(judgement, key, None) if judgement else None
            what = ("the Base model cloning zero-shot from the reference audio" if key == "baseline"
                    else "real held-out clips of the corpus, scored the same way")
            text = f" {key}: {what}" + (f" · {row['error']}" if row and "error" in row else
                                          "" if row else " · made by the run's scorer after its first checkpoint")
        elif key is not None:
            c = next((c for c in app.checkpoints.get(app.selected, ((), None))[0] if str(c.path) == key), None)
            if c is not None:
                state, why = score_state(c.name, c.scores, judgement.states if judgement else {})
                text = f" {c.name}: {state}" + (f" · {why}" if why else "")
        self.query_one("#why", Static).update(escape(text) if table.row_count else "")

    def _row_key(self) -> str | None:
        table = self.query_one(CheckpointsTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return key.value if key else None

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._explain()
        self.refresh_bindings()

    def highlighted(self) -> Path | None:
        key = self._row_key()
        return Path(key) if key and key not in PINNED else None

    def unscored(self) -> list[str]:
        app = self.app
        checkpoints, _free = app.checkpoints.get(app.selected, ((), None))
        judgement = app.judgements.get(app.selected)
        states = judgement.states if judgement else {}
        return [c.name for c in checkpoints
                if c.scores is None and (states.get(c.name) or {}).get("state") not in ("queued", "running")]

    def why_not(self, action: str) -> str | None:
        if not self.is_mounted:
            return None
        if action in ("audition", "score", "serve") and self.highlighted() is None:
            key = self._row_key()
            return (f"the {key} row is the run's reference, not a checkpoint" if key in PINNED else
                    f"no checkpoint to {action} yet")
        if action == "score":
            judgement = self.app.judgements.get(self.app.selected)
            entry = (judgement.states if judgement else {}).get(self.highlighted().name) or {}
            if entry.get("state") in ("queued", "running"):
                return f"{self.highlighted().name} is already {STATE_WORD[entry['state']]}"
        if action == "prune" and not self.app.checkpoints.get(self.app.selected, ((), None))[0]:
            return "no checkpoints to prune"
        if action == "score_all" and not self.unscored():
            return "every checkpoint is scored, queued or being scored"
        return None

    def prune_policy(self):
        """The selected run's one policy and where it came from: its own (run.json, the one its trainer and
        scorer apply after each save) where it has one, else the configuration's [retention]."""
        from contract import retention

        settings = self.app.settings
        origin = settings.source("retention")
        source = (f"[retention] of {origin.removeprefix('file ')}" if origin.startswith("file ") else
                  "[retention] of the configuration" if settings.retention is not None else
                  "the defaults (no [retention] in the configuration file)")
        return retention.policy_for(self.app.selected, settings.retention_policy(), source)

    def prune_protect(self) -> dict[str, str]:
        """What stays whatever the policy says: the audition worker's checkpoint and those waiting to be scored
        (the worker also holds its folder, so even a stale plan cannot delete it)."""
        from contract import retention

        app = self.app
        protect = retention.waiting_for_scores(app.selected)  # scoring.json as it is now, not as last drawn
        if app.is_screen_installed("audition"):
            loaded = getattr(app.get_screen("audition"), "loaded", None)
            if loaded and Path(loaded).parent == app.selected:
                protect[Path(loaded).name] = "loaded for audition"
        return protect

    def action_prune(self) -> None:
        from contract import retention

        app = self.app
        if app.selected is None:
            return
        policy, source = self.prune_policy()
        plan = retention.plan(app.selected, policy, app.best_rule_of(app.selected)[0], protect=self.prune_protect())
        self.confirm_prune(app.selected, policy, source, plan)

    def confirm_prune(self, run_dir: Path, policy, source: str, plan, *, changed: bool = False) -> None:
        """Ask before deleting what `plan` deletes; at `y` the app plans again under the run's prune lock and
        deletes only if the plan is still this one, else this comes back with the new plan."""
        app, rule = self.app, self.app.best_rule_of(run_dir)[0]
        if not plan.delete:
            self.notify(("the plan changed since it was shown: " if changed else "") +
                        f"nothing to prune: the policy (best {policy.keep_best}, newest {policy.keep_last}"
                        + (f", {fmt_bytes(policy.budget_bytes)}" if policy.budget_bytes is not None else "")
                        + f"; {source}) keeps all {len(plan.keep)}")
            return
        from milo_tui.screens.dialogs import ConfirmScreen

        question, detail = prune_confirmation(run_dir.name, policy, source, plan, rule, changed=changed)

        def answered(yes: bool) -> None:
            if yes:
                app.prune(run_dir, list(plan.delete), policy, rule, self.prune_protect(),
                          lambda now: self.confirm_prune(run_dir, policy, source, now, changed=True))

        app.push_screen(ConfirmScreen(question, detail), answered)

    def action_score(self) -> None:
        checkpoint = self.highlighted()
        if checkpoint is not None and self.app.selected is not None:
            self.app.score(self.app.selected, [checkpoint.name])

    def action_score_all(self) -> None:
        names = self.unscored()
        if names and self.app.selected is not None:
            self.app.score(self.app.selected, names)

    def action_audition(self) -> None:
        checkpoint = self.highlighted()
        if checkpoint is not None and self.app.selected is not None:
            self.app.post_message(AuditionRequested(self.app.selected, checkpoint))

    def action_serve(self) -> None:
        checkpoint = self.highlighted()
        if checkpoint is not None:
            self.app.serve(checkpoint)

    def action_back(self) -> None:
        self.app.pop_screen()


def prune_confirmation(run: str, policy, source: str, plan, rule, *, changed: bool = False) -> tuple[str, str]:
    """(question, detail) of the prune confirmation: the policy and where it came from, what `y` will delete,
    what stays and why; in the future tense (nothing is gone until the answer)."""
    question = (("The plan changed since it was shown (new scores, saves or another prune). " if changed else "")
                + f"Delete {len(plan.delete)} checkpoint(s) of {run}, freeing {fmt_bytes(plan.freed_bytes)}?")
    lines = [f"Policy: {policy.describe(rule)}.", f"From: {source}.", "",
             "Will delete on y:", *(f"  {name}" for name in plan.delete), "",
             f"Keeps {len(plan.keep)}:", *(f"  {name}: {why}" for name, why in plan.keep.items())]
    if plan.over_budget:
        lines += ["", f"The ones that must stay alone take {fmt_bytes(plan.kept_bytes)}: over the budget."]
    return question, "\n".join(lines)

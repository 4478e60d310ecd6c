"""Checkpoint operations, each in a thread worker: score (queue checkpoints in the run's scoring.json and start
its scorer), adopt (an official-script folder) and prune (delete what the operator confirmed). A mixin of MiloApp:
the checkpoints view and the runs view call these; what each worker ends with comes back as a message."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # milo_tui.messages is imported once the first frame is up
    from milo_tui.messages import CheckpointsPruned, PrunePlanChanged, RunAdopted, ScoringStarted


class CheckpointOps:
    """MiloApp's operations on a run's checkpoints."""

    def scorer_device_of(self, run_dir: Path | None) -> str:
        """Where the run's scorer generates: as its trainer recorded it (run.json), else [scoring] device."""
        run = self.runs.get(run_dir) if run_dir else None
        return (run.score_device if run is not None and run.score_device else None) or self.settings.score_device

    def score(self, run_dir: Path, names: list[str]) -> None:
        """Queue checkpoints in the run's scoring.json and start its scorer: the same queue and process the
        trainer uses after a save (contract.scores.start_scorer). Fork and exec stay off the event loop."""
        from contract import scores
        from milo_tui.messages import OperationFailed, ScoringStarted

        device = self.scorer_device_of(run_dir)

        def queue_and_start() -> None:
            why = scores.missing_reference(run_dir)
            if why:  # said now, not after the minutes a scorer would spend without a voice to compare with
                self.post_message(OperationFailed(f"not scoring: {why}"))
                return
            for name in names:  # an OSError here (the run folder unwritable) fails the worker: said in one line
                scores.set_state(run_dir, name, scores.QUEUED, by="dashboard")
            try:
                scores.start_scorer(run_dir, python=self._sources["python"], device=device, env=self._sources["env"])
            except OSError as exc:
                self.post_message(OperationFailed(f"cannot start the scorer: {exc}"))
                return
            self.post_message(ScoringStarted(run_dir, names))

        self.run_worker(queue_and_start, thread=True, group="score", name=f"score {run_dir.name}", exit_on_error=False)

    def on_scoring_started(self, message: ScoringStarted) -> None:
        names = message.names
        what = names[0] if len(names) == 1 else f"{len(names)} checkpoints"
        self.notify(f"scoring {what} of {message.run_dir.name} (scoring.log in the run folder)")

    def action_adopt(self) -> None:
        """Ask for the corpus (the scorer's reference voice; prefilled with the run's, else the configured data),
        then adopt the selected official-script folder (contract/adopt.py) in a thread: hashing copies of a
        base model takes a while. Adopting again records a corpus given now and links what is new."""
        from milo_tui.screens.adopt import AdoptScreen

        r = self.selected_summary()
        if r is None:
            return
        self.push_screen(AdoptScreen(r.name, r.data or self.default_data(), again=r.adopted),
                         lambda answer: answer is not None and self._adopt(r, answer[0]))

    def _adopt(self, r, corpus: Path | None) -> None:
        from contract.adopt import AdoptError, adopt
        from milo_tui.messages import OperationFailed, RunAdopted

        def work() -> None:
            try:
                result = adopt(r.path, data=corpus)
            except (AdoptError, OSError) as exc:
                self.post_message(OperationFailed(f"cannot adopt {r.name}: {exc}"))
                return
            self.post_message(RunAdopted(r.path, result.headline(r.name), has_corpus=bool(result.data)))

        self.notify(f"adopting {r.name}: comparing its checkpoints' files...")
        self.run_worker(work, thread=True, group="adopt", name=f"adopt {r.name}", exit_on_error=False)

    def on_run_adopted(self, message: RunAdopted) -> None:
        self.notify(message.headline, severity="information" if message.has_corpus else "warning", timeout=10)
        if self.watcher is not None:
            self.watcher.wake()

    def prune(self, run_dir: Path, names: list[str], policy, rule, protect: dict[str, str], changed) -> None:
        """Delete the checkpoints the operator confirmed (contract/retention.py), in a thread: planned again under
        the run's prune lock, and only if the plan is still the one shown; else `changed(new plan)` shows it."""
        from contract import retention
        from milo_tui.messages import CheckpointsPruned, OperationFailed, PrunePlanChanged

        def work() -> None:
            try:
                now, done = retention.apply_if_unchanged(run_dir, names, policy, rule, protect=protect)
            except OSError as exc:  # the run folder unwritable, or gone: nothing was deleted
                self.post_message(OperationFailed(f"cannot prune {run_dir.name}: {exc.strerror or exc}"
                                                  f"{f' ({exc.filename})' if exc.filename else ''}; nothing was deleted"))
                return
            self.post_message(PrunePlanChanged(run_dir, now, changed) if done is None else CheckpointsPruned(run_dir, done))

        self.run_worker(work, thread=True, group="prune", name=f"prune {run_dir.name}", exit_on_error=False)

    def on_checkpoints_pruned(self, message: CheckpointsPruned) -> None:
        from contract.units import fmt_bytes

        done = message.done
        kept = "; ".join(f"kept {n}: {why}" for n, why in done.skipped.items())
        self.notify(f"deleted {len(done.deleted)} checkpoint(s) of {message.run_dir.name}, freed "
                    f"{fmt_bytes(done.freed_bytes)}" + (f"; {kept}" if kept else ""),
                    severity="warning" if done.skipped else "information", timeout=10)
        if self.watcher is not None:
            self.watcher.wake()

    def on_prune_plan_changed(self, message: PrunePlanChanged) -> None:
        message.show(message.plan)

"""The audition session without a screen or a worker: commands it sends, the worker's events fed in by
hand, the statuses it returns, the A/B pairs and blind mode, verdicts and ratings in the real samples index."""
from __future__ import annotations

from pathlib import Path

import pytest

from contract.protocol import Cmd, Event, Playback
from contract.samples import append_sample, read_samples
from milo_tui.audition.session import AB_GAP_S, AuditionSession

TEXT = "Hello from the session."


class Sent(list):
    """Stands in for the worker's stdin: keeps each command and gives it an id, as WorkerClient.send does."""

    def __call__(self, cmd: Cmd, **fields) -> str:
        job_id = f"{cmd}-{len(self) + 1}"
        self.append({"cmd": cmd, "id": job_id, **fields})
        return job_id

    def of(self, cmd: Cmd) -> list[dict]:
        return [c for c in self if c["cmd"] == cmd]


@pytest.fixture
def run(tmp_path) -> Path:
    run = tmp_path / "voice"
    run.mkdir()
    return run


def make_session(run: Path, *, ab: bool = False, blind: bool = False) -> tuple[AuditionSession, Sent]:
    sent = Sent()
    session = AuditionSession(run, sent, output="local")
    session.checkpoint_a = run / "epoch-0001"
    session.fixed_seed = 7
    if ab:
        assert not session.choose_b(run / "epoch-0002").error
        assert session.ab_mode
    if blind:
        session.toggle_blind()
    return session, sent


def done(session: AuditionSession, say: dict, sample_id: int) -> object:
    """The worker saved `say`'s audition (the index line it writes) and reports it done."""
    rec = append_sample(session.run_dir, id=sample_id, wav=f"{sample_id:04d}-x.wav",
                        checkpoint=Path(say["checkpoint"]).name, text=say["text"], seed=say["seed"],
                        ab_group=say.get("ab_group"), ab_label=say.get("ab_label"), blind=say.get("blind", False),
                        audio_s=1.5, wall_s=0.5, rtf=3.0, first_audio_s=0.2)
    return session.on_event({"event": Event.DONE, "id": say["id"], "sample": rec})


def test_a_pair_is_both_checkpoints_with_one_seed_then_a_then_b_played_once_both_are_saved(run):
    session, sent = make_session(run, ab=True)
    status = session.speak(TEXT)
    says = sent.of(Cmd.SAY)
    assert [(Path(s["checkpoint"]).name, s["ab_label"]) for s in says] == [("epoch-0001", "A"), ("epoch-0002", "B")]
    assert {s["seed"] for s in says} == {7} and len({s["ab_group"] for s in says}) == 1
    assert not any(s["play"] for s in says)  # nothing plays until both are saved
    assert status.text == "A/B: generating both (seed 7), then playing A then B..." and not status.error

    status = done(session, says[1], 1)  # B first: the worker's order is not the playing order
    assert status.text == "A/B: B ready, generating the other..." and [s.id for s in status.rows] == [1]
    assert not sent.of(Cmd.PLAY)
    status = done(session, says[0], 2)
    (play,) = sent.of(Cmd.PLAY)
    assert [Path(w).name for w in play["wavs"]] == ["0002-x.wav", "0001-x.wav"] and play["gap_s"] == AB_GAP_S
    assert status.text == "A/B: playing A then B (A epoch-0001, B epoch-0002); rate with a / b / = (or 1-5)"
    assert not session.pairs and play["id"] in session.jobs


def test_blind_never_says_which_checkpoint_speaks_until_the_pair_is_judged(run):
    session, sent = make_session(run, ab=True, blind=True)
    session.loaded = str(session.checkpoint_a)
    assert "(loaded)" not in session.info()  # blind: the mark would tell which checkpoint spoke last
    session.blind = False
    assert "epoch-0001 (loaded)" in session.info()
    session.blind = True
    session.speak(TEXT)
    says = sent.of(Cmd.SAY)
    assert all(s["blind"] for s in says) and {s["ab_label"] for s in says} == {"A", "B"}
    # the worker loads each checkpoint in turn: neither its name nor the (loaded) mark may show
    first = {"id": says[0]["id"], "checkpoint": says[0]["checkpoint"]}
    shown = [session.on_event({"event": Event.LOADING, **first}).text,
             session.on_event({"event": Event.STARTED, **first, "seed": 7, "sentences": 1}).text]
    session.loaded = str(session.checkpoint_a)  # whichever spoke last: the header never marks A loaded
    assert "(loaded)" not in session.info()
    shown += [done(session, says[0], 1).text, done(session, says[1], 2).text]
    assert shown[:2] == ["loading the checkpoint for A...", "A (?): speaking, seed 7, 1 sentence(s)..."]
    assert shown[-1] == "A/B: playing A then B; rate with a / b / = (or 1-5)"
    assert not [line for line in shown if "epoch-000" in line], shown
    assert {session.cells(s)["checkpoint"] for s in session.samples.values()} == {"A:?", "B:?"}
    # a replay names only the label too
    assert session.replay(session.samples[1]).text == f"replaying #0001 ({says[0]['ab_label']})"


def test_a_preference_is_recorded_in_the_index_and_reveals_the_pair(run):
    session, sent = make_session(run, ab=True, blind=True)
    session.speak(TEXT)
    for n, say in enumerate(sent.of(Cmd.SAY), 1):
        done(session, say, n)
    by_label = {s.ab_label: s for s in session.samples.values()}
    status = session.prefer(by_label["B"], "A")  # judged from B's row: the verdict is the pair's
    folded = {s.ab_label: s for s in read_samples(run)}
    assert folded["A"].preferred is True and folded["B"].preferred is False
    assert status.text == (f"A/B: A preferred; A was {folded['A'].checkpoint}, B was {folded['B'].checkpoint}")
    assert {session.cells(s)["checkpoint"] for s in status.rows} == {f"A:{folded['A'].checkpoint} +",
                                                                     f"B:{folded['B'].checkpoint}"}
    # "=": no difference, recorded as no preferred sample; neither is marked
    assert session.prefer(by_label["A"], "=").text.startswith("A/B: no difference; A was ")
    assert all(s.decided and s.preferred is None for s in read_samples(run))


def test_rating_both_halves_reveals_a_blind_pair_rating_one_does_not(run):
    session, sent = make_session(run, ab=True, blind=True)
    session.speak(TEXT)
    for n, say in enumerate(sent.of(Cmd.SAY), 1):
        done(session, say, n)
    status = session.rate(session.samples[1], 4)
    assert status.text == "#0001 rated 4/5" and [s.id for s in status.rows] == [1, 2]  # both rows redrawn
    assert [session.cells(s)["checkpoint"][2:] for s in status.rows] == ["?", "?"]
    status = session.rate(session.samples[2], 2)
    assert "?" not in {session.cells(s)["checkpoint"][2:] for s in status.rows}
    assert {s.id: s.rating for s in read_samples(run)} == {1: 4, 2: 2}


def test_b_is_a_is_refused_in_one_line_and_a_b_stays_off(run):
    session, sent = make_session(run)
    status = session.choose_b(run / "epoch-0001")
    assert status.error and status.text.startswith("B is A (epoch-0001)") and not session.ab_mode
    assert session.speak(TEXT).text == "epoch-0001: queued..." and sent.of(Cmd.SAY)[0]["play"] is True


def test_a_crash_forgets_the_pair_it_lost_and_says_where_the_log_is(run):
    session, sent = make_session(run, ab=True)
    session.speak(TEXT)
    assert session.pairs and session.busy()
    lost = [s["id"] for s in sent.of(Cmd.SAY)]
    status = session.on_event({"event": Event.CRASHED, "lost": lost, "log": "/tmp/w.log",
                               "message": "the audition worker killed by signal 9"})
    assert status.error and status.text == "the audition worker killed by signal 9; restarting it (log: /tmp/w.log)"
    assert not session.pairs and not session.busy() and session.worker_state == "restarting"
    assert session.on_event({"event": Event.RESTARTED}).text == status.text and session.worker_state == "restarted"


def test_an_audition_that_found_no_device_says_saved_but_not_played(run):
    session, sent = make_session(run)
    session.speak(TEXT)
    say = sent.of(Cmd.SAY)[0]
    session.on_event({"event": Event.PLAYBACK, "id": say["id"], "state": Playback.NO_DEVICE,
                      "message": "no output device; start the sound server"})
    assert "(not playing: no device)" in session.info()
    status = done(session, say, 1)
    assert status.error and status.text == ("epoch-0001: 1.5 s of audio, saved #0001; NOT PLAYED: no output device; "
                                            "start the sound server; o switches to the laptop")
    status = session.on_event({"event": Event.OUTPUT, "detail": "laptop", "problem": None})
    assert "no device" not in session.info() and status.text == "output: laptop"


def test_events_go_to_their_handlers_and_others_leave_the_line_as_it_was(run):
    session, sent = make_session(run)
    assert session.on_event({"event": Event.FATAL, "message": "no CUDA"}).error
    # ready after an error keeps the error in view
    assert session.on_event({"event": Event.READY, "device": "cpu", "dtype": "float32",
                             "output_detail": "spark"}).text == "no CUDA"
    assert session.worker_state == "ready (cpu, float32)"
    assert session.on_event({"event": Event.PONG, "id": "ping-1"}).text == "no CUDA"
    assert session.on_event({"event": Event.STARTED, "id": "say-99", "seed": 1}).text == "no CUDA"  # not ours
    session.speak(TEXT)
    say = sent.of(Cmd.SAY)[0]
    session.on_event({"event": Event.STARTED, "id": say["id"], "checkpoint": "epoch-0001", "seed": 7, "sentences": 2})
    assert session.last_seed == 7
    assert session.on_event({"event": Event.SENTENCE, "id": say["id"], "index": 1, "count": 2}).text == \
        "epoch-0001: sentence 2/2..."
    status = session.on_event({"event": Event.ERROR, "id": say["id"], "message": "say failed",
                               "lines": ["say failed", "text too long"]})
    assert status.error and status.text == "say failed (text too long)" and not session.busy()


def test_stop_keeps_a_checkpoint_loading_and_drops_the_rest(run):
    session, sent = make_session(run, ab=True)
    session.load(session.checkpoint_a)
    session.speak(TEXT)
    assert session.stop().text == "stopping..." and sent[-1]["cmd"] == Cmd.STOP
    assert [j.kind for j in session.jobs.values()] == [Cmd.LOAD] and not session.pairs


def test_another_run_brings_its_history_and_ends_a_b(run, tmp_path):
    session, _sent = make_session(run, ab=True)
    other = tmp_path / "other"
    append_sample(other, id=1, wav="0001-x.wav", checkpoint="epoch-0003", text="hi", seed=1)
    assert not session.switch_run(run)
    assert session.switch_run(other) and list(session.samples) == [1] and not session.ab_mode

"""The new-run form: every field checked before anything starts; errors are one line each."""
from __future__ import annotations

import json

from milo_tui.screens.new_run import NewRunScreen, validate_form
from tests.dashboard.conftest import make_app, screen_text, wait_for


def _values(base_dir, data_path, **over):
    values = dict(base_model=str(base_dir), data=str(data_path), run_name="voice-1", lr="2e-5", epochs="3", batch_size="2",
                  grad_accum="4", speaker="milo", attention="sdpa", restart_limit="1", method="full", lora_rank="16",
                  lora_alpha="32", lora_targets="talker+mlp")
    values.update(over)
    return values


def test_a_good_form_becomes_a_request(base, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    request, errors = validate_form(_values(base, data), tmp_path / "checkpoints")
    assert errors == {}
    assert request.run_dir == (tmp_path / "checkpoints" / "voice-1").absolute()
    assert (request.epochs, request.lr, request.restart_limit, request.prepare_first) == (3, 2e-5, 1, False)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _wav(corpus / "a.wav")
    (corpus / "b.m4a").write_bytes(b"not checked: prepare reads it through its fallback")
    request, errors = validate_form(_values(base, corpus), tmp_path / "checkpoints")
    assert errors == {} and request.prepare_first


def _wav(path):
    import numpy as np
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(2400, np.float32), 24000)


def test_a_folder_whose_audio_does_not_open_is_refused_naming_the_first_bad_file(base, tmp_path, capfd):
    """Names are not formats: a folder of files called .wav and .mp3 that are not audio is refused in one line
    that names the first bad file and says it is not audio soundfile can read, never that it does not exist.
    The check runs apart: libmpg123's notes about a broken MP3 would land on the dashboard's terminal."""
    corpus = tmp_path / "corpus"
    _wav(corpus / "a_good.wav")
    (corpus / "b_notes.mp3").write_text("these are my notes, not audio\n")
    (corpus / "c_fake.wav").write_bytes(b"RIFF not really a wave file")
    request, errors = validate_form(_values(base, corpus), tmp_path / "ck")
    assert request is None and list(errors) == ["data"], errors
    line = errors["data"]
    assert line.startswith("b_notes.mp3: not audio that soundfile can read") and "\n" not in line, line
    assert "does not exist" not in line and line.count("unreadable") <= 1
    assert capfd.readouterr().err == ""
    (corpus / "b_notes.mp3").unlink()
    assert validate_form(_values(base, corpus), tmp_path / "ck")[1]["data"].startswith("c_fake.wav: not audio")
    (corpus / "c_fake.wav").unlink()
    (corpus / "sub").mkdir()
    sf_empty = corpus / "sub" / "empty.wav"
    import soundfile as sf
    import numpy as np

    sf.write(sf_empty, np.zeros(0, np.float32), 24000)
    assert "sub/empty.wav: holds no samples" in validate_form(_values(base, corpus), tmp_path / "ck")[1]["data"]
    sf_empty.unlink()
    assert validate_form(_values(base, corpus), tmp_path / "ck")[1] == {}


async def test_the_form_refuses_a_folder_of_files_that_are_not_audio(base, tmp_path):
    app, _data, launched = _app_with_base_and_data(base, tmp_path)
    corpus = tmp_path / "not-audio"
    corpus.mkdir()
    (corpus / "clip.wav").write_bytes(b"RIFF not really a wave file")
    (corpus / "clip.txt").write_text("hello\n")
    async with app.run_test(size=(100, 30)) as pilot:
        form = await _open_form(app, pilot)
        form.query_one("#data").value = str(corpus)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert launched == [] and isinstance(app.screen, NewRunScreen) and app.focused.id == "data"
        assert "clip.wav: not audio that soundfile can read" in form.query_one("#errors").render().plain
        assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())


def test_each_bad_field_gets_its_line(base, tmp_path):
    custom = tmp_path / "custom"
    (custom / "speech_tokenizer").mkdir(parents=True)
    (custom / "config.json").write_text(json.dumps({"model_type": "qwen3_tts", "tts_model_type": "custom_voice"}))
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "ck" / "taken").mkdir(parents=True)
    cases = {
        "base_model": [(str(tmp_path / "nope"), "is not a folder"), (str(custom), "fine-tuning starts from a Base model"),
                       (str(empty), "no readable config.json"), ("", "is required")],
        "data": [(str(empty), "holds no audio files"), (str(tmp_path / "x.jsonl"), "does not exist")],
        "run_name": [("../escape", "run name: letters"), ("taken", "already exists"), ("a b", "run name")],
        "lr": [("fast", "must be a number"), ("1", "must be from")],
        "epochs": [("0", "must be from 1"), ("2.5", "whole number")],
        "batch_size": [("-1", "must be from")],
        "speaker": [("two words", "one word")],
        "restart_limit": [("101", "must be from 0")],
        "attention": [("flash", "attention must be one of")],
        "keep_best": [("-1", "must be from 0"), ("all", "whole number")],
        "keep_last": [("two", "whole number")],
        "disk_budget": [("lots", "is not a size"), ("-5G", "cannot be negative")],
        "stop_unimproved": [("1.5", "whole number")],
    }
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    request, errors = validate_form(_values(base, data), tmp_path / "ck")
    assert errors == {} and request is not None  # the control: every other field below is valid
    for field, bad in cases.items():
        for value, words in bad:
            request, errors = validate_form(_values(base, data, **{field: value}), tmp_path / "ck")
            assert request is None and list(errors) == [field] and words in errors[field], (field, value, errors)
            assert "\n" not in errors[field]


def test_the_prune_and_stop_fields_become_trainer_flags(base, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")

    def flags(**fields):
        request, errors = validate_form(_values(base, data, **fields), tmp_path / "ck")
        assert errors == {}, errors
        return list(request.retain)

    assert flags() == [] and flags(keep_best="", keep_last="", disk_budget="", stop_unimproved="0") == []
    assert flags(keep_best="3") == ["--keep-best", "3", "--keep-last", "2"]
    assert flags(keep_best="1", keep_last="0", disk_budget="40G", stop_unimproved="4") == [
        "--keep-best", "1", "--keep-last", "0", "--disk-budget", str(40 * 1024 ** 3), "--stop-unimproved", "4"]
    assert flags(stop_unimproved="2") == ["--stop-unimproved", "2"]  # a quality stop without pruning
    request, errors = validate_form(_values(base, data, keep_last="1", disk_budget="1G"), tmp_path / "ck")
    assert request is None and errors == {"keep_best": "prune: give keep best too (empty keeps every checkpoint)"}


async def test_the_retention_table_fills_the_form_and_the_launch_carries_it(base, tmp_path):
    from contract.retention import Policy

    app, _data, launched = _app_with_base_and_data(base, tmp_path)
    app.settings = app.settings.with_values("test", retention=Policy(2, 1, 3 * 1024 ** 3 // 2, True, 3))
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot)
        shown = {key: form.query_one(f"#{key}").value for key in ("keep_best", "keep_last", "disk_budget", "stop_unimproved")}
        assert shown == {"keep_best": "2", "keep_last": "1", "disk_budget": "1536M", "stop_unimproved": "3"}
        form.query_one("#keep_best").value = ""  # this run keeps every checkpoint; the quality stop stays
        form.query_one("#keep_last").value = ""
        form.query_one("#disk_budget").value = ""
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: launched, what="the launch")
        assert launched[0].retain == ("--stop-unimproved", "3")


async def test_a_demo_launch_carries_the_demos_own_rule_and_where_its_scorer_runs(base, tmp_path):
    """On the demo workspace a run is started with its own best rule (the tiny model never stops: runaway is
    allowed, and run.json says why); every run gets the [scoring] device. Outside the demo the rule is the
    configured one: no rule flags."""
    from milo_tui.demo import DEMO_BEST_NOTE
    from milo_tui.supervisor import trainer_argv

    async def judging(demo: bool):
        app, _data, launched = _app_with_base_and_data(base, tmp_path, demo=demo, score_device="auto")
        async with app.run_test(size=(80, 24)) as pilot:
            await _open_form(app, pilot)
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: launched, what="the launch")
        return launched[0]

    demo = await judging(True)
    assert demo.judging == ("--score-device", "auto", "--best-max-runaway", "5", "--best-note", DEMO_BEST_NOTE)
    argv = trainer_argv("python", demo)
    assert argv[argv.index("--best-max-runaway"):][:4] == ["--best-max-runaway", "5", "--best-note", DEMO_BEST_NOTE]
    assert (await judging(False)).judging == ("--score-device", "auto")


def _app_with_base_and_data(base, tmp_path, *, demo: bool = False, **settings):
    """An app whose new-run form opens filled with a valid base and data; launches are recorded, not run."""
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    app = make_app(tmp_path / "ck", demo=demo, settings={"data": data, **settings})
    app.settings = app.settings.with_values("test", base_model=base)
    launched = []
    app.launch = launched.append
    return app, data, launched


async def _open_form(app, pilot) -> NewRunScreen:
    await pilot.pause()
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen))
    await pilot.pause()
    return app.screen


async def test_the_form_shows_errors_and_launches_nothing_until_fixed(base, tmp_path):
    app, data, launched = _app_with_base_and_data(base, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot)
        assert form.query_one("#base_model").value == str(base) and form.query_one("#data").value == str(data)
        form.query_one("#epochs").value = "zero"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert launched == [] and "epochs must be a whole number" in screen_text(app)
        assert app.focused.id == "epochs"
        form.query_one("#epochs").value = "2"
        await pilot.press("enter")
        await wait_for(pilot, lambda: launched, what="the launch")
        assert launched[0].epochs == 2 and launched[0].base_model == base.absolute()
        assert not isinstance(app.screen, NewRunScreen)


async def test_the_form_opens_with_a_field_focused_so_enter_launches(base, tmp_path):
    app, data, launched = _app_with_base_and_data(base, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_form(app, pilot)
        assert app.focused is not None and app.focused.id == "run_name"
        await pilot.press("enter")
        await wait_for(pilot, lambda: launched, what="the launch")
        assert launched[0].base_model == base.absolute() and launched[0].data == data


async def test_the_form_focuses_the_first_empty_field(tmp_path):
    app = make_app(tmp_path / "ck")  # a base model is configured, no data
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_form(app, pilot)
        assert app.screen.query_one("#base_model").value and not app.screen.query_one("#data").value
        assert app.focused is not None and app.focused.id == "data"


async def test_an_error_line_goes_once_its_field_is_fixed(base, tmp_path):
    app, data, launched = _app_with_base_and_data(base, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await _open_form(app, pilot)
        form.query_one("#epochs").value = "zero"
        form.query_one("#lr").value = "fast"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "epochs must be a whole number" in screen_text(app) and "must be a number" in screen_text(app)
        assert app.focused.id == "lr"
        form.query_one("#lr").value = ""
        await pilot.press(*"1e-5")  # fixed: its line goes, the other field's stays
        await pilot.pause()
        text = screen_text(app)
        assert "must be a number" not in text and "epochs must be a whole number" in text, text
        assert not form.query_one("#lr").has_class("-invalid") and form.query_one("#epochs").has_class("-invalid")
        form.query_one("#epochs").value = "2.5"  # still wrong, another way: the line says how
        await pilot.pause()
        assert "epochs must be a whole number" in screen_text(app)
        form.query_one("#epochs").value = "2"
        await pilot.pause()
        assert "epochs must" not in screen_text(app) and launched == []


def test_the_form_refuses_each_value_outside_the_run_limits_with_the_contracts_line(base, tmp_path):
    """The limits live beside the run defaults (contract.defaults.RUN_LIMITS), for the form and the trainer."""
    from contract.defaults import RUN_LIMITS, run_limit_problem

    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    for key, limit in RUN_LIMITS.items():
        step = 1 if limit.kind is int else limit.low / 2
        for value in (limit.low - step, limit.high + step if limit.kind is int else limit.high * 2):
            value = limit.kind(value)
            said = run_limit_problem(key, value)
            assert said == f"{limit.label} must be from {limit.low:g} to {limit.high:g}", (key, value)
            over = {key: str(value), **({"keep_best": "1"} if key == "keep_last" else {}),
                    **({"method": "lora"} if key.startswith("lora_") else {})}  # LoRA's fields count for LoRA only
            request, errors = validate_form(_values(base, data, **over), tmp_path / "ck")
            assert request is None and errors == {key: said}, (key, value, errors)
        for edge in (limit.low, limit.high):
            assert run_limit_problem(key, limit.kind(edge)) is None
            if key != "keep_last":
                assert validate_form(_values(base, data, method="lora", **{key: str(limit.kind(edge))}),
                                     tmp_path / "ck")[1] == {}
    assert run_limit_problem("epochs", 2.5) == "epochs must be a whole number"
    assert run_limit_problem("epochs", True) == "epochs must be a whole number"
    assert run_limit_problem("lr", "fast") == "learning rate must be a number"


def test_a_lora_form_becomes_a_lora_request_and_command_line_and_a_full_one_stays_unchanged(base, tmp_path):
    """LoRA's rank, alpha and targets are checked by the run limits and reach the trainer as --method lora
    --rank --alpha --targets; a full run's command line has none of them (what it was before LoRA), and its
    hidden LoRA fields are not checked."""
    from contract.defaults import RUN_DEFAULTS
    from milo_tui.supervisor import trainer_argv

    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    request, errors = validate_form(_values(base, data, method="lora", lora_rank="8", lora_alpha="16",
                                            lora_targets="talker", lr="5e-05"), tmp_path / "ck")
    assert errors == {}
    assert (request.method, request.lora_rank, request.lora_alpha, request.lora_targets, request.lr) == (
        "lora", 8, 16.0, "talker", 5e-5)
    argv = trainer_argv("python", request)
    at = argv.index("--method")
    assert argv[at:at + 8] == ["--method", "lora", "--rank", "8", "--alpha", "16.0", "--targets", "talker"]
    assert argv[argv.index("--lr") + 1] == "5e-05"
    full, errors = validate_form(_values(base, data, lora_rank="0", lora_alpha="x", lora_targets="all"), tmp_path / "ck")
    assert errors == {} and full.method == "full"
    argv = trainer_argv("python", full)
    assert not {"--method", "--rank", "--alpha", "--targets"} & set(argv)
    assert argv == trainer_argv("python", validate_form(_values(base, data), tmp_path / "ck")[0])
    for field, value, said in (("lora_rank", "0", "LoRA rank must be from 1 to 512"),
                               ("lora_rank", "2.5", "LoRA rank must be a whole number"),
                               ("lora_alpha", "lots", "LoRA alpha must be a number"),
                               ("lora_targets", "everything", "LoRA targets must be one of talker, talker+mlp, talker+predictor"),
                               ("method", "qlora", "method must be one of full, lora")):
        request, errors = validate_form(_values(base, data, **{"method": "lora", field: value}), tmp_path / "ck")
        assert request is None and errors == {field: said}, (field, errors)
    assert RUN_DEFAULTS["method"] == "full"


async def test_the_lora_fields_show_for_lora_only_and_the_learning_rate_follows_the_method(base, tmp_path):
    """Choosing LoRA shows rank, alpha, targets and the line on LoRA's defaults, and puts LORA_LR in the learning
    rate the form filled in; a learning rate the operator typed stays; back on full the fields go. The launch
    carries the LoRA fields."""
    from textual.widgets import Select

    from contract.defaults import LORA_LR, RUN_DEFAULTS
    from milo_tui.screens.new_run import LORA_HELP

    app, _data, launched = _app_with_base_and_data(base, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_form(app, pilot)
        lora_parts = [form.query_one(f"#{key}") for key in ("lora_rank", "lora_alpha", "lora_targets", "lora_help")]
        text = screen_text(app)
        assert form.query_one("#method", Select).value == "full" and "Method" in text
        assert not any(part.display and part.parent.display for part in lora_parts[:3]) and not lora_parts[3].display
        assert "LoRA rank" not in text and "never stopped talking" not in text
        assert form.query_one("#lr").value == str(RUN_DEFAULTS["lr"])

        form.query_one("#method", Select).value = "lora"
        await pilot.pause()
        text = screen_text(app)
        assert "LoRA rank" in text and "LoRA alpha" in text and "LoRA targets" in text, text
        assert "2e-4 and above never stopped talking" in LORA_HELP and "broke pronunciation" in LORA_HELP
        assert form.query_one("#lora_help").display and "talker+mlp" in text and "LoRA: lr 5e-05 unless typed" in text
        assert form.query_one("#lr").value == str(LORA_LR) == "5e-05"
        assert (form.query_one("#lora_rank").value, form.query_one("#lora_alpha").value) == ("16", "32")

        form.query_one("#method", Select).value = "full"  # back: the form's own learning rate comes back
        await pilot.pause()
        assert form.query_one("#lr").value == str(RUN_DEFAULTS["lr"]) and "LoRA rank" not in screen_text(app)

        form.query_one("#lr").value = "3e-05"  # typed: a method change leaves it
        form.query_one("#method", Select).value = "lora"
        await pilot.pause()
        assert form.query_one("#lr").value == "3e-05"
        form.query_one("#lora_rank").value = "0"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert launched == [] and "LoRA rank must be from 1 to 512" in screen_text(app) and app.focused.id == "lora_rank"
        form.query_one("#method", Select).value = "full"  # the wrong field is hidden now: its line goes
        await pilot.pause()
        assert "LoRA rank must" not in screen_text(app)
        form.query_one("#method", Select).value = "lora"
        form.query_one("#lora_rank").value = "8"
        form.query_one("#lora_targets", Select).value = "talker"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: launched, what="the launch")
    got = launched[0]
    assert (got.method, got.lora_rank, got.lora_alpha, got.lora_targets, got.lr) == ("lora", 8, 32.0, "talker", 3e-5)


def test_hosts_and_a_master_address_become_the_multi_host_command_line(base, tmp_path):
    """Hosts (the others, by SSH name) with this host's address reach the trainer as --hosts a,b --master-addr X
    [--iface IF], in the launch command Resume repeats; no hosts: the command line has none of them, and the
    hidden master address and interface are not checked. Each wrong field is one line."""
    from milo_tui.supervisor import resume_argv, trainer_argv

    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    request, errors = validate_form(_values(base, data, hosts="spark2, spark3", master_addr="192.168.100.1"), tmp_path / "ck")
    assert errors == {}
    assert (request.hosts, request.master_addr, request.iface) == (("spark2", "spark3"), "192.168.100.1", None)
    argv = trainer_argv("python", request)
    at = argv.index("--hosts")
    assert argv[at:at + 4] == ["--hosts", "spark2,spark3", "--master-addr", "192.168.100.1"] and "--iface" not in argv
    assert resume_argv("python", request.run_dir, {"launch_command": argv})[:-1] == argv  # Resume: the same hosts
    request, errors = validate_form(_values(base, data, hosts="spark2", master_addr="10.0.0.1", iface="enp1s0f0np0"),
                                    tmp_path / "ck")
    argv = trainer_argv("python", request)
    at = argv.index("--hosts")
    assert argv[at:at + 6] == ["--hosts", "spark2", "--master-addr", "10.0.0.1", "--iface", "enp1s0f0np0"]
    assert "--sync" not in argv   # a JSONL: the operator's data, the preflight compares it
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    import numpy as np
    import soundfile as sf

    sf.write(corpus / "clip.wav", np.zeros(2400, dtype=np.float32), 24000)
    request, errors = validate_form(_values(base, corpus, hosts="spark2", master_addr="10.0.0.1"), tmp_path / "ck")
    # a corpus prepared on this host first is on this host only: the launcher copies it to the others
    assert errors == {} and request.prepare_first and "--sync" in trainer_argv("python", request)
    local, errors = validate_form(_values(base, data, hosts=" , ", master_addr="", iface="- bad"), tmp_path / "ck")
    assert errors == {} and local.hosts == ()
    assert not {"--hosts", "--master-addr", "--iface"} & set(trainer_argv("python", local))
    assert trainer_argv("python", local) == trainer_argv("python", validate_form(_values(base, data), tmp_path / "ck")[0])
    for over, field, said in (
            (dict(hosts="spark2"), "master_addr", "give this host's address on the link (the others reach it)"),
            (dict(hosts="spark 2", master_addr="10.0.0.1"), "hosts", "hosts: 'spark 2' is not a host's SSH name"),
            (dict(hosts="spark2,-oProxyCommand=x", master_addr="10.0.0.1"), "hosts", "hosts: '-oProxyCommand=x' is not"),
            (dict(hosts="spark2", master_addr="-x"), "master_addr", "master address '-x'"),
            (dict(hosts="spark2", master_addr="10.0.0.1", iface="en p1"), "iface", "interface 'en p1'")):
        request, errors = validate_form(_values(base, data, **over), tmp_path / "ck")
        assert request is None and list(errors) == [field] and errors[field].startswith(said), (over, errors)
        assert "\n" not in errors[field]


async def test_the_master_address_shows_once_hosts_are_given_and_the_launch_carries_them(base, tmp_path):
    """The master address and interface are hidden for a run on this host; Hosts without a master address is
    its one line and launches nothing; with it, the request's command line runs across the hosts."""
    from milo_tui.supervisor import trainer_argv

    app, _data, launched = _app_with_base_and_data(base, tmp_path)
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_form(app, pilot)
        across = [form.query_one(f"#{key}").parent for key in ("master_addr", "iface")]
        assert "Hosts (others, by SSH name)" in screen_text(app) and not any(row.display for row in across)
        assert "Master address" not in screen_text(app)
        form.query_one("#hosts").value = "spark2"
        await pilot.pause()
        assert all(row.display for row in across) and "Master address (this host)" in screen_text(app)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert launched == [] and isinstance(app.screen, NewRunScreen) and app.focused.id == "master_addr"
        assert "give this host's address on the link (the others reach it)" in form.query_one("#errors").render().plain
        form.query_one("#hosts").value = ""  # this host only: the hidden field's line goes
        await pilot.pause()
        assert not any(row.display for row in across) and form.query_one("#errors").render().plain == ""
        form.query_one("#hosts").value = "spark2,spark3"
        form.query_one("#master_addr").value = "192.168.100.1"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: launched, what="the launch")
    argv = trainer_argv("python", launched[0])
    at = argv.index("--hosts")
    assert argv[at:at + 4] == ["--hosts", "spark2,spark3", "--master-addr", "192.168.100.1"]

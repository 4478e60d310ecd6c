"""The new-run form: every field validated before anything is launched (validate_form is a plain
function, tested on its own). Defaults come from the configuration."""
from __future__ import annotations

import re
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select, Static

from contract.checkpoint import BaseModelError, check_base_model
from contract.corpus import AUDIO_SUFFIXES, audio_files, first_unreadable_apart
from contract.bundle import METHODS, TARGETS
from contract.defaults import ATTENTION, LORA_LR, RUN_DEFAULTS, parse_run_value
from milo_tui.supervisor import RunRequest

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SPEAKER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# field id -> its label
FIELDS = {
    "base_model": "Base model folder",
    "data": "Data (JSONL or corpus folder)",
    "run_name": "Run name",
    "lr": "Learning rate",
    # full fine-tuning or LoRA (voice bundles, docs/training.md "LoRA"); the lora_ fields show for LoRA only.
    # After the learning rate, which the method changes (LORA_LR) in sight; tab still goes run name -> lr
    "method": "Method",
    "lora_rank": "LoRA rank",
    "lora_alpha": "LoRA alpha (scale alpha/rank)",
    "lora_targets": "LoRA targets",
    "epochs": "Epochs",
    "batch_size": "Batch size",
    "grad_accum": "Gradient accumulation",
    "speaker": "Speaker name",
    "attention": "Attention",
    "restart_limit": "Restarts on crash (0 = off)",
    # retention after each save and quality-aware stopping (docs/retention.md); defaults: the config's [retention]
    "keep_best": "Prune: keep best (empty=off)",
    "keep_last": "Prune: keep newest",
    "disk_budget": "Prune: disk budget (e.g. 40G)",
    "stop_unimproved": "Quality stop after N (0=off)",
    # one run over this host and others (docs/multi-node.md); master_addr and iface show once hosts are given
    "hosts": "Hosts (others, by SSH name)",
    "master_addr": "Master address (this host)",
    "iface": "Interface (optional)",
}
PRUNE_FIELDS = ("keep_best", "keep_last", "disk_budget")
LORA_FIELDS = ("lora_rank", "lora_alpha", "lora_targets")
HOST_FIELDS = ("master_addr", "iface")  # shown only when Hosts names a host
SELECTS = {  # field -> its (shown, value) choices; the others are typed
    "method": [("full: every weight", "full"), ("LoRA: adapters, voice bundles", "lora")],
    "lora_targets": [("talker: attention", "talker"), ("talker+mlp: attention and MLP", "talker+mlp"),
                     ("talker+predictor: and the code predictor", "talker+predictor")],
    "attention": [(a, a) for a in ATTENTION],
}
# why LoRA's defaults are what they are (docs/training.md, "LoRA"), under its fields
LORA_HELP = (f"LoRA: lr {LORA_LR:g} unless typed (full's {RUN_DEFAULTS['lr']:g} is too small a step for adapters; "
             f"2e-4 and above never stopped talking); code predictor frozen (adapting it broke pronunciation)")
OPTIONAL = ("speaker", *PRUNE_FIELDS, "hosts")  # empty is a choice: the run's name as speaker, no pruning, this host
PLACEHOLDERS = {"speaker": "the run name", "keep_best": "off: every checkpoint stays", "keep_last": "2",
                "disk_budget": "none", "hosts": "none: this host only (e.g. spark2)",
                "master_addr": "its address on the link, e.g. 192.168.100.1", "iface": "as the environment has it"}


def base_model_problem(path: Path) -> str | None:
    """Why `path` is not a Base model to fine-tune (contract.checkpoint.check_base_model, as prepare and the
    trainer check it), or None."""
    try:
        check_base_model(path)
    except BaseModelError as exc:
        return str(exc)
    return None


def check_data(path: Path, open_each: bool = True) -> str | None:
    """Why `path` is not training data, or None. `open_each`: open every clip of a corpus folder (a child
    process, about a second on a large corpus: at launch, not while a field is typed)."""
    if path.is_file():
        return None if path.suffix == ".jsonl" else f"{path.name} is not a .jsonl file"
    if path.is_dir():
        if not audio_files(path):
            return f"{path} holds no audio files ({', '.join(AUDIO_SUFFIXES)})"
        if not open_each:
            return None
        # a name is not a format: each file must open, or the run would fail in its preparation
        bad = first_unreadable_apart(path)
        if bad is not None:
            return f"{bad[0].relative_to(path)}: {bad[1]}; remove or replace it (in {path})"
        return None
    return f"{path} does not exist"


def validate_form(values: dict[str, str], checkpoints: Path, only: str | None = None
                  ) -> tuple[RunRequest | None, dict[str, str]]:
    """(request, {}) when every field is right, else (None, {field: one-line error}). With `only`, the errors
    of that one field, and no request (a field checked again as it is typed: no clip of a corpus folder is
    opened then; the launch opens them)."""
    def wanted(key: str) -> bool:
        return only is None or key == only

    errors: dict[str, str] = {}
    paths = {}
    for key in ("base_model", "data"):
        text = values.get(key, "").strip()
        if not wanted(key):
            continue
        if not text:
            errors[key] = f"{FIELDS[key]} is required"
            continue
        paths[key] = Path(text).expanduser().absolute()
        err = base_model_problem(paths[key]) if key == "base_model" else check_data(paths[key], open_each=only is None)
        if err:
            errors[key] = err
    method = values.get("method") or "full"
    if method not in METHODS and wanted("method"):
        errors["method"] = f"method must be one of {', '.join(METHODS)}"
    lora = {}
    if method == "lora":  # a full run's LoRA fields are hidden: not checked, not passed
        for key in ("lora_rank", "lora_alpha"):
            lora[key], err = parse_run_value(key, values.get(key, ""))
            if err and wanted(key):
                errors[key] = err
        lora["lora_targets"] = values.get("lora_targets") or RUN_DEFAULTS["lora_targets"]
        if lora["lora_targets"] not in TARGETS and wanted("lora_targets"):
            errors["lora_targets"] = f"LoRA targets must be one of {', '.join(TARGETS)}"
    name = values.get("run_name", "").strip()
    if wanted("run_name"):
        if not RUN_NAME.match(name):
            errors["run_name"] = "run name: letters, digits, . _ - (up to 64), starting with a letter or digit"
        elif (Path(checkpoints) / name).exists():
            errors["run_name"] = f"a run named {name!r} already exists"
    numbers = {}
    for key in ("lr", "epochs", "batch_size", "grad_accum", "restart_limit"):
        numbers[key], err = parse_run_value(key, values.get(key, ""))
        if err and wanted(key):
            errors[key] = err
    speaker = values.get("speaker", "").strip()
    if speaker and not SPEAKER.match(speaker) and wanted("speaker"):
        errors["speaker"] = "speaker name: one word of letters, digits, _ or - (up to 32)"
    attention = values.get("attention") or "sdpa"
    if attention not in ATTENTION and wanted("attention"):
        errors["attention"] = f"attention must be one of {', '.join(ATTENTION)}"
    retain, retain_errors = _retention(values)
    errors.update({key: err for key, err in retain_errors.items() if wanted(key)})
    hosts, across, host_errors = _hosts(values)
    errors.update({key: err for key, err in host_errors.items() if wanted(key)})
    if errors or only is not None:
        return None, errors
    return RunRequest(run_dir=Path(checkpoints).absolute() / name, base_model=paths["base_model"], data=paths["data"],
                      epochs=numbers["epochs"], lr=numbers["lr"], batch_size=numbers["batch_size"],
                      grad_accum=numbers["grad_accum"], speaker=speaker.lower(), attention=attention,
                      restart_limit=numbers["restart_limit"], retain=retain, method=method, hosts=hosts,
                      **across, **lora), {}


def _hosts(values: dict[str, str]) -> tuple[tuple[str, ...], dict, dict[str, str]]:
    """(the other hosts, {master_addr, iface}, errors). No hosts: a run on this host, the other two fields hidden
    and not checked. A name with a space or a leading "-" would be read as something else by ssh or the shell."""
    hosts = tuple(h.strip() for h in values.get("hosts", "").split(",") if h.strip())
    if not hosts:
        return (), {}, {}
    errors: dict[str, str] = {}
    bad = next((h for h in hosts if h.startswith("-") or any(c.isspace() for c in h)), None)
    if bad is not None:
        errors["hosts"] = f"hosts: {bad!r} is not a host's SSH name (no spaces, not starting with -; commas between)"
    addr, iface = values.get("master_addr", "").strip(), values.get("iface", "").strip()
    if not addr:
        errors["master_addr"] = "give this host's address on the link (the others reach it)"
    elif addr.startswith("-") or any(c.isspace() for c in addr):
        errors["master_addr"] = f"master address {addr!r}: one address or name, not starting with -"
    if iface and (iface.startswith("-") or any(c.isspace() for c in iface)):
        errors["iface"] = f"interface {iface!r}: one interface name (e.g. enp1s0f0np0), not starting with -"
    return hosts, {"master_addr": addr, "iface": iface or None}, errors


def _retention(values: dict[str, str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The trainer flags of the prune and quality-stop fields. Pruning after each save is on when "keep best"
    holds a number; "keep newest" and the budget then refine it (empty: 2 newest, no budget)."""
    from contract.retention import Policy
    from contract.units import parse_size

    errors: dict[str, str] = {}
    text = {key: values.get(key, "").strip() for key in (*PRUNE_FIELDS, "stop_unimproved")}
    counts = {}
    for key, empty in (("keep_best", None), ("keep_last", Policy.keep_last), ("stop_unimproved", 0)):
        if not text[key]:
            counts[key] = empty
            continue
        counts[key], err = parse_run_value(key, text[key])
        if err:
            errors[key] = err
    budget = None
    if text["disk_budget"]:
        try:
            budget = parse_size(text["disk_budget"])
        except ValueError as exc:
            errors["disk_budget"] = f"disk budget: {exc}"
    if counts.get("keep_best") is None and not errors and (text["keep_last"] or text["disk_budget"]):
        errors["keep_best"] = "prune: give keep best too (empty keeps every checkpoint)"
    if errors:
        return (), errors
    pruning = counts["keep_best"] is not None
    policy = Policy(keep_best=counts["keep_best"] or 0, keep_last=counts["keep_last"], budget_bytes=budget,
                    after_each_save=pruning, stop_unimproved=counts["stop_unimproved"])
    return tuple(policy.trainer_flags()), {}


def retention_defaults(policy) -> dict[str, str]:
    """The form's prune and quality-stop fields for a configured policy (contract.retention.Policy)."""
    from contract.units import size_text

    on = policy.after_each_save
    return {"keep_best": str(policy.keep_best) if on else "", "keep_last": str(policy.keep_last) if on else "",
            "disk_budget": size_text(policy.budget_bytes) if on and policy.budget_bytes is not None else "",
            "stop_unimproved": str(policy.stop_unimproved)}


class NewRunScreen(ModalScreen[RunRequest | None]):
    BINDINGS = [
        Binding("ctrl+s", "launch", "Launch", id="form_launch", tooltip="Check every field, then start the run"),
        Binding("escape", "cancel", "Cancel", id="form_cancel", tooltip="Close the form; nothing starts"),
    ]

    def __init__(self, defaults: dict[str, str], checkpoints: Path) -> None:
        super().__init__()
        lora = {"method": RUN_DEFAULTS["method"], "lora_rank": str(RUN_DEFAULTS["lora_rank"]),
                "lora_alpha": f"{RUN_DEFAULTS['lora_alpha']:g}", "lora_targets": RUN_DEFAULTS["lora_targets"]}
        self.defaults, self.checkpoints = {**lora, **defaults}, checkpoints
        self.errors: dict[str, str] = {}  # field -> its line, as last shown
        # the learning rate the form put in (not the operator): the method's default replaces only this
        self.auto_lr = self.defaults.get("lr", "")

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="form"):
            yield Label("[b]New run[/]  tab moves, enter or ctrl+s launches, esc cancels", classes="title")
            for key, label in FIELDS.items():
                with Horizontal(classes="field lora" if key in LORA_FIELDS else "field across" if key in HOST_FIELDS
                                else "field"):
                    yield Label(label, classes="label")
                    if key in SELECTS:
                        yield Select(SELECTS[key], value=self.defaults.get(key) or SELECTS[key][0][1], allow_blank=False,
                                     compact=True, id=key)
                    else:
                        yield Input(self.defaults.get(key, ""), compact=True, id=key, placeholder=PLACEHOLDERS.get(key, ""))
                if key == LORA_FIELDS[-1]:
                    yield Static(LORA_HELP, id="lora_help", classes="lora hint")
            yield Static("", id="errors")

    def on_mount(self) -> None:
        # A field has the focus from the start, so Enter launches as the title says: the first empty one,
        # else the run name (the field most often changed).
        self.set_class(self.defaults.get("method") != "lora", "-full")
        self.set_class(not self.defaults.get("hosts", "").strip(), "-local")
        empty = [key for key in FIELDS if key not in (*SELECTS, *LORA_FIELDS, *HOST_FIELDS, *OPTIONAL)
                 and not self.defaults.get(key, "").strip()]
        self.query_one(f"#{empty[0] if empty else 'run_name'}", Input).focus()
        self.call_after_refresh(self._show_ends)

    def on_select_changed(self, event: Select.Changed) -> None:
        """LoRA's fields show for LoRA only, and the learning rate follows the method (LORA_LR, or full's
        default) unless the operator typed one."""
        if event.select.id != "method":
            return
        lora = event.value == "lora"
        self.set_class(not lora, "-full")
        lr = self.query_one("#lr", Input)
        if lr.value.strip() == self.auto_lr.strip():
            self.auto_lr = lr.value = str(LORA_LR if lora else RUN_DEFAULTS["lr"])
        if not lora and any(key in self.errors for key in LORA_FIELDS):  # hidden fields: their lines go
            self._show_errors({key: err for key, err in self.errors.items() if key not in LORA_FIELDS})

    def _show_ends(self) -> None:
        for field in self.query(Input):  # a long path shows its end: the names that tell paths apart
            field.scroll_to(x=max(0, len(field.value) + 1 - field.content_size.width), animate=False)

    def values(self) -> dict[str, str]:
        out = {key: self.query_one(f"#{key}", Input).value for key in FIELDS if key not in SELECTS}
        out.update({key: str(self.query_one(f"#{key}", Select).value) for key in SELECTS})
        return out

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_launch()

    def _show_errors(self, errors: dict[str, str]) -> None:
        self.errors = errors
        for key in FIELDS:
            self.query_one(f"#{key}").set_class(key in errors, "-invalid")
        self.query_one("#errors", Static).update("\n".join(errors.values()))

    def on_input_changed(self, event: Input.Changed) -> None:
        # A field that was wrong is checked again as it is edited: its line goes once it is right (and
        # changes when it is wrong in another way); the other fields' lines stay until the next launch.
        key = event.input.id
        if key == "hosts":  # the master address and interface show while a host is named; hidden, their lines go
            local = not event.value.replace(",", "").strip()
            self.set_class(local, "-local")
            if local and any(k in self.errors for k in HOST_FIELDS):
                self._show_errors({k: err for k, err in self.errors.items() if k not in HOST_FIELDS})
        if key not in self.errors:
            return
        _request, now = validate_form(self.values(), self.checkpoints, only=key)
        errors = dict(self.errors)
        if key in now:
            errors[key] = now[key]
        else:
            del errors[key]
        self._show_errors(errors)

    def action_launch(self) -> None:
        request, errors = validate_form(self.values(), self.checkpoints)
        self._show_errors(errors)
        if errors:
            first = next(iter(errors))
            self.query_one(f"#{first}").focus()
            self.notify(errors[first], severity="error")
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)

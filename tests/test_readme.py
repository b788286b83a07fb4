"""The README is executable: `make demo`'s recipe, every command in README.md and every "Next"
command the demo prints run here, in the order a user meets them, in one scratch directory; the
console output the README shows must still have the shape the code prints.

Each command runs in a fresh ``bash`` that does only what the README says after its two set-up
commands (its activation line, ``source .venv/bin/activate``, with ``.venv`` the environment
``make`` created), with no interpreter of the test's on PATH: ``python`` is the user's.

Substitutions (the only ones; everything else runs as written):
- ``$(PY)``/``$(DEMO)`` as the Makefile sets them (the Makefile's own recipe uses ``.venv/bin/python``);
- sizes and steps: the demo's fit runs 20 steps (README: 300); a fit/validate with a size config
  (configs/electra-*.yaml) gets the model 2 layers deep and 1/4 as wide, ``data.batch_size=2``
  and 4 steps (validation, logging every 2); fine-tuning gets 1 epoch on 64 examples; ``glue``
  1 seed;
- paths: ``corpus/*.txt``, ``heldout.txt``: the demo corpus' train/validation text; ``glue_data``:
  ../shared/data/glue (skipped when absent); ``PATH``: the last checkpoint; ``OTHER_RUN``: the run
  directory of the first pretraining command; a config's ``hub:NAME`` sources and ``data/tokenizer``
  that the command does not override: a local mirror of NAME (tests/test_shipped.py) and the
  tokenizer the README's ``tokenizer`` command wrote;
- a resume/validate (``--ckpt_path``) runs as written: the run's saved config supplies the rest
  (only its steps are raised); a fresh fit starts without the earlier run's directory, as a user
  starting over would;
- multi-node: ``MASTER_ADDR=HOST`` → 127.0.0.1 with a free port, both ``NODE_RANK``s started here,
  one CPU device each.
Not run: ``make demo``/``make test`` (this test runs the demo's recipe; CI runs the tests) and
``srun`` (needs SLURM; the command it wraps runs above without it).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helpers import HANG_GUARD, HUB_LAYOUT, REPO, SHARED_DATA, write_hub_mirror

pytestmark = pytest.mark.slow

README = REPO / "README.md"
NOT_RUN = ("make demo", "make test", "srun ")


def shell_commands(text: str) -> list[tuple[str, list[str]]]:
    """(command, the output lines printed under it in the README) for every ``python -m
    electra_lightning``/``make`` command in a fenced block, continuation lines joined, comments
    and env-var prefixes kept."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].strip()
            dollar = line.startswith("$ ")
            line = line.removeprefix("$ ")
            full = line
            while full.endswith("\\") and i + 1 < len(lines):
                i += 1
                full = full[:-1].rstrip() + " " + lines[i].strip()
            full = re.sub(r"\s+#.*$", "", full).strip()
            if re.search(
                r"(^|\s)(python -m electra_lightning|make )", full
            ) and not full.startswith("#"):
                output = []
                if dollar:  # the lines that follow, up to the next command, are its output
                    j = i + 1
                    while j < len(lines) and not lines[j].startswith("$ "):
                        output.append(lines[j])
                        j += 1
                found.append((full, [o for o in output if o.strip()]))
            i += 1
    return found


def makefile_recipe(target: str) -> list[str]:
    text = (REPO / "Makefile").read_text()
    body = re.search(rf"^{target}:.*?\n((?:\t.*\n)+)", text, re.M).group(1)
    commands, current = [], ""
    for line in body.splitlines():
        current += " " + line.strip()
        if current.endswith("\\"):
            current = current[:-1]
            continue
        commands.append(current.strip())
        current = ""
    return commands


def skeleton(line: str) -> str:
    """A console line's shape: each word, prediction or token ``w``, each number ``N`` (a run of
    numbers one ``N``), table rules and ``|`` kept."""
    out = []
    for token in line.split():
        if re.fullmatch(r"[|\-±:]+", token):
            kind = token
        elif re.search(r"\d", token):
            kind = "N"
        else:
            kind = "w"
        if not (kind == "N" and out and out[-1] == "N"):
            out.append(kind)
    return " ".join(out)


def words(text: str) -> str:
    """Text with numbers as ``N``, the AUC's trend word as ``TREND`` (both depend on the run's
    figures) and whitespace collapsed (wrapping may differ)."""
    text = re.sub(r"\d[\d,.]*(?:\s*[MBx%])?", "N", text)
    text = " ".join(text.split())  # first: a wrapped trend phrase must still match below
    text = re.sub(
        r"\((rising|flat|falling|flat at chance|one validation: no trend yet"
        r"|falling to chance: it no longer tells replaced tokens apart)\)",
        "(TREND)",
        text,
    )
    text = re.sub(r"\b(better|worse)\b", "SIGN", text)  # a gain's sign is a figure too
    text = re.sub(r"no SIGN than (.*?) \(gain [+-]?N nats\)", r"N nats SIGN than \1", text)
    return " ".join(text.split())


class Workspace:
    def __init__(self, root: Path, hub: Path):
        self.root, self.hub = root, hub
        self.ran: list[str] = []

    def run(self, command: str, env: dict | None = None, check: bool = True):
        env = {**user_environment(), "PYTHONUNBUFFERED": "1", "COLUMNS": "100", **(env or {})}
        proc = subprocess.run(
            ["bash", "-c", f"{activation()} && {command}"],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`{command}` exited {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            )
        self.ran.append(command)
        return proc

    def adapt(self, command: str) -> list[str]:
        """The command(s) to run for a README command (see the module docstring)."""
        python = "python"  # the activated environment's, as the user runs it
        parts = shlex.split(command)
        if " -m electra_lightning " not in f" {command} ":
            return [command]
        sub = parts[parts.index("electra_lightning") + 1]
        args = parts[parts.index("electra_lightning") + 2 :]
        env_prefix = [p for p in parts[: parts.index(python)] if "=" in p]
        args = [a.replace("PATH", self.last_checkpoint()) if a == "PATH" else a for a in args]
        if "OTHER_RUN" in args:
            args[args.index("OTHER_RUN")] = str(self.root / "runs" / "electra-small")
        if sub in ("fit", "validate"):
            args = self.adapt_fit(sub, args)
        elif sub == "glue-data" and not (SHARED_DATA / "glue").is_dir():
            pytest.skip("../shared/data/glue absent (glue_data/ is its copy here: nothing fetched)")
        elif sub == "glue":
            args = replace_option(args, "--seeds", "1")
            args = [a for a in args if not a.startswith(("--trainer.max_epochs", "--data.limit"))]
            args += ["--trainer.max_epochs=1", "--data.limit_train_examples=64"]
        line = " ".join([python, "-m", "electra_lightning", sub, *map(quote_glob, args)])
        if any(p.startswith("MASTER_ADDR=") for p in env_prefix):
            port = free_port()
            line = line.replace("--trainer.devices=8", "--trainer.devices=1")
            return [
                f"MASTER_ADDR=127.0.0.1 MASTER_PORT={port} NODE_RANK={rank} {line}"
                for rank in (1, 0)
            ]
        return [line]

    def adapt_fit(self, sub: str, args: list[str]) -> list[str]:
        configs = [args[i + 1] for i, a in enumerate(args) if a == "--config"]
        size_config = next(
            (c for c in configs if re.search(r"electra-(small|base|large)", c)), None
        )
        finetune = any("finetune" in c for c in configs)
        resuming = any(a.startswith("--ckpt_path") for a in args) or sub == "validate"
        if args[-1:] == ["--print_config"]:
            return args
        if finetune:
            if not (SHARED_DATA / "glue").is_dir():
                pytest.skip("../shared/data/glue absent")
            return [*args, "--trainer.max_epochs=1", "--data.limit_train_examples=64"]
        if size_config is None:
            return args
        from .helpers import scaled_size

        config = REPO / size_config
        shipped = yaml.safe_load(config.read_text())["data"]
        data = [a for a in args if a.startswith("--data.")]
        given = {a.split("=")[0].split()[0] for a in data}
        # "--data.x value" pairs: keep the value with its option
        pairs = []
        for i, a in enumerate(args):
            if a.startswith("--data.") and "=" not in a:
                pairs += [a, args[i + 1]]
            elif a.startswith("--data."):
                pairs.append(a)
        for field in ("train_files", "val_files"):
            value = shipped.get(field)
            if f"--data.{field}" not in given and str(value).startswith("hub:"):
                pairs.append(f"--data.{field}=hub:{self.hub}/{value.removeprefix('hub:')}")
        if "--data.tokenizer" not in given:
            pairs.append("--data.tokenizer=tokenizer")
        name = config.stem
        if resuming:  # verbatim: the run's saved config holds its data, size and batch
            return [*args, "--trainer.max_steps=6"]
        shutil.rmtree(self.root / "runs" / name, ignore_errors=True)
        rest = []
        skip = False
        for a in args:
            if skip:
                skip = False
                continue
            if a.startswith("--data."):
                skip = "=" not in a
                continue
            rest.append(a)
        steps = 6 if resuming else 4
        scale = scaled_size(config)
        every = ["--trainer.val_check_interval=2", "--trainer.log_every_n_steps=2"]
        return [
            *rest,
            *pairs,
            *scale,
            "--data.batch_size=2",
            f"--trainer.max_steps={steps}",
            *every,
        ]

    def last_checkpoint(self) -> str:
        found = sorted(self.root.glob("runs/*/checkpoints/last.ckpt"), key=os.path.getmtime)
        return str(found[-1].relative_to(self.root))


def activation() -> str:
    """The README's activation line (right after its two set-up commands)."""
    found = re.search(r"`(source \.venv/bin/activate)`", README.read_text())
    assert found, "README.md must say how to use the environment: `source .venv/bin/activate`"
    return found.group(1)


def user_environment() -> dict:
    """This environment as a user's shell has it: no virtual environment active, none of its
    directories on PATH (the test's own interpreter included)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    venv = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(
        d for d in env.get("PATH", "").split(os.pathsep) if d and Path(d) != Path(venv)
    )
    return env


def replace_option(args: list[str], option: str, value: str) -> list[str]:
    out, i = [], 0
    while i < len(args):
        if args[i] == option:
            out += [option, value]
            i += 2
            while i < len(args) and not args[i].startswith("--"):
                i += 1
            continue
        out.append(args[i])
        i += 1
    return out


def quote_glob(arg: str) -> str:
    return arg if arg.startswith("runs/wandb/offline-run-") else shlex.quote(arg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("user")
    if not (REPO / ".venv" / "bin" / "activate").is_file():
        pytest.skip("no .venv here: the README's commands run in the environment `make` creates")
    (root / ".venv").symlink_to(REPO / ".venv")  # what `make demo`/`make test` created
    (root / "configs").symlink_to(REPO / "configs")
    (root / "data").mkdir()
    (root / "data" / "make_demo_corpus.py").symlink_to(REPO / "data" / "make_demo_corpus.py")
    if (SHARED_DATA / "glue").is_dir():
        (root / "glue_data").symlink_to(SHARED_DATA / "glue")
    hub = tmp_path_factory.mktemp("hub")
    return Workspace(root, hub)


@pytest.fixture(scope="module")
def demo(workspace) -> str:
    """`make demo`'s recipe, 20 steps instead of 300; returns what its summary printed."""
    ws = workspace
    printed = ""
    for command in makefile_recipe("demo"):
        command = command.replace("$(PY)", ".venv/bin/python").replace("$(DEMO)", "data/demo")
        if "fit --config configs/tiny.yaml" in command:
            command += " --trainer.max_steps=20 --trainer.val_check_interval=10"
        proc = ws.run(command)
        printed = proc.stdout
    texts = (ws.root / "data/demo/train.txt").read_text().split("\n\n")
    write_hub_mirror(ws.hub, "Skylion007/openwebtext", [t for t in texts if t.strip()])
    write_hub_mirror(
        ws.hub, "Salesforce/wikitext", (ws.root / "data/demo/val.txt").read_text().splitlines()
    )
    (ws.root / "corpus").mkdir()
    shutil.copy(ws.root / "data/demo/train.txt", ws.root / "corpus/part-1.txt")
    shutil.copy(ws.root / "data/demo/val.txt", ws.root / "heldout.txt")
    assert set(HUB_LAYOUT) == {"Skylion007/openwebtext", "Salesforce/wikitext"}
    return printed


def readme_block_after(marker: str) -> list[str]:
    text = README.read_text()
    start = text.index(marker)
    block = re.search(r"```\n(.*?)```", text[start:], re.S).group(1)
    return block.splitlines()


def test_readme_demo_output_is_what_the_demo_prints(demo):
    """The README's "It ends like this (real output)" block: the same text as the summary prints,
    up to figures and line wrapping."""
    shown = "\n".join(readme_block_after("It ends like this"))
    assert words(shown) == words(demo[demo.index("=" * 78) :]), (shown, demo)


def test_readme_progress_bar_line_has_the_printed_shape(workspace, demo):
    text = README.read_text()
    shown = re.search(r"```\n(step: .*?)\n```", text).group(1)
    proc = workspace.run(
        "python -m electra_lightning fit --config configs/tiny.yaml "
        "--trainer.max_steps=32 --ckpt_path=last"  # past a logging step (tok/s)
    )
    output = proc.stdout + proc.stderr
    printed = [p for p in re.split(r"[\r\n]", output) if p.startswith("step:")]
    assert printed, output[-2000:]
    bar = re.compile(
        r"step: +\d+/\d+ +\d+%\|[^|]*\| \d\d:\d\d<\d\d:\d\d, loss=[\d.]+, tok/s=[\d,]+"
    )
    assert bar.match(shown), shown
    assert any(bar.match(p) for p in printed), printed[-3:]


def test_every_readme_and_next_command_runs(workspace, demo):
    """In README order, then the demo's "Next" commands; `$` blocks' output keeps its shape."""
    ws = workspace
    commands = shell_commands(README.read_text())
    assert len(commands) >= 20  # the extraction found the README's commands
    nxt = demo[demo.index("\nNext") :]
    next_commands = [(c, []) for c, _ in shell_commands(f"```\n{nxt}\n```")]
    # tokenizer, fit, glue-data (glue_data/SST-2 is there: kept, nothing fetched), fine-tune, compare
    assert len(next_commands) == 5, nxt
    checked_outputs = 0
    for command, shown in [*commands, *next_commands]:
        if command.startswith(NOT_RUN):
            continue
        runs = ws.adapt(command)
        if len(runs) == 2:  # two nodes on this machine
            procs = [
                subprocess.Popen(
                    ["bash", "-c", f"{activation()} && {runs[0]}"],
                    cwd=ws.root,
                    env=user_environment(),
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            ]
            ws.run(runs[1])
            out, err = procs[0].communicate(timeout=HANG_GUARD)
            assert procs[0].returncode == 0, err[-3000:]
            continue
        proc = ws.run(runs[0])
        assert "Traceback" not in proc.stderr, (command, proc.stderr[-3000:])
        if shown:  # the README shows what it prints, or a contiguous excerpt (glue's table)
            want = [skeleton(s) for s in shown]
            got = [skeleton(p) for p in proc.stdout.splitlines() if p.strip()]
            starts = range(len(got) - len(want) + 1)
            assert any(got[i : i + len(want)] == want for i in starts), (command, shown, got)
            checked_outputs += 1
    assert checked_outputs >= 4  # glue table, classify, fill-mask, detect

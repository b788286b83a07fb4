"""``python -m electra_lightning``: the command dispatcher.

It imports nothing heavy: ``--help`` answers at once, and each command imports what it needs
(``fit``/``validate``/``test`` load Lightning through ``lightning_cli``; ``predict``, ``export`` …
load torch/transformers only when they run).
"""

from __future__ import annotations

import os
import sys

from electra_lightning.common.config_files import config_files
from electra_lightning.common.errors import STOP, NothingToDo, ShardError, StopNow, TrainingStopped

COMMANDS = """commands:
  fit | validate | test              train or evaluate (--config configs/X.yaml; --help for options)
  tokenizer                          train a WordPiece tokenizer on local text files
  export                             write a checkpoint as Hugging Face model directories
  predict fill-mask|detect|classify  use exported models (fill [MASK]; RTD view; labels)
  compare RUN_DIR...                 table + PNG of W&B (offline) or CSV runs
  glue --init_from DIR --tasks ...   fine-tune GLUE tasks over several seeds; table + test files
  glue-data --output_dir glue_data   download GLUE (Hub: nyu-mll/glue) in the glue_data TSV layout
  summary RUN_DIR                    what a run trained, where its files are, what to try next
  (fit/validate with --config configs/finetune/TASK.yaml fine-tune the encoder)
"""


def program_name() -> str:
    """The command as the user typed it: ``python -m electra_lightning`` or the installed
    ``electra-lightning`` script."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if name in ("", "__main__.py", "-c") or name.endswith(".py"):
        return "python -m electra_lightning"
    return name


LIGHTNING_COMMANDS = ("fit", "validate", "test")
OUR_COMMANDS = ("tokenizer", "export", "predict", "compare", "glue", "glue-data", "summary")


def unknown_command(command: str) -> str:
    """One line for a command that does not exist: the nearest one and every command."""
    import difflib

    known = [*LIGHTNING_COMMANDS, *OUR_COMMANDS]
    near = difflib.get_close_matches(command, known, n=1, cutoff=0.6)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    return (
        f"unknown command '{command}'{hint} Commands: {', '.join(known)} "
        f"(see {program_name()} --help)"
    )


def usage() -> str:
    return f"usage: {program_name()} COMMAND [options]\n\n{COMMANDS}"


def is_finetune(args: list[str]) -> bool:
    """Fine-tuning when ``model.init_from`` or ``data.task`` is given on the command line or in a
    ``--config`` file (configs/finetune/*.yaml)."""
    if any(a.startswith(("--model.init_from", "--data.task")) for a in args):
        return True
    return any(
        "init_from" in (config.get("model") or {}) or "task" in (config.get("data") or {})
        for _, config in config_files(args)
    )


def run(command: str, rest: list[str], argv: list[str], from_shell: bool) -> None:
    prog = f"{program_name()} {command}"
    if command == "tokenizer":
        from electra_lightning.data.tokenizer import main as tokenizer_main

        tokenizer_main(rest, prog)
    elif command == "export":
        from electra_lightning.hf.export import main as export_main

        export_main(rest, prog)
    elif command == "compare":
        from electra_lightning.report.compare import main as compare_main

        compare_main(rest)
    elif command == "predict":
        from electra_lightning.hf.predict import main as predict_main

        predict_main(rest, prog)
    elif command == "glue":
        from electra_lightning.cli.glue_runner import main as glue_main

        glue_main(rest)
    elif command == "glue-data":
        from electra_lightning.finetune.glue_data import main as glue_data_main

        glue_data_main(rest, prog)
    elif command == "summary":
        from electra_lightning.report.summary import main as summary_main

        summary_main(rest, prog)
    else:
        from electra_lightning.cli.lightning import run_finetune_cli, run_lightning_cli
        from electra_lightning.common.runs import resume_argv

        # a named run's resume reads its saved config (runs/NAME/config.yaml) first
        argv, _ = resume_argv(argv)
        if from_shell:  # so that Lightning's DDP launcher starts the other ranks with it too
            sys.argv[1:] = argv
        args = None if from_shell else argv
        if is_finetune(argv):
            run_finetune_cli(args, prog=program_name())
        else:
            run_lightning_cli(args, prog=program_name())


def main(argv: list[str] | None = None) -> int:
    from_shell = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv[0].startswith("-") and argv[0] not in (*LIGHTNING_COMMANDS, *OUR_COMMANDS):
        print(f"error: {unknown_command(argv[0])}", file=sys.stderr)
        return 2
    if argv[0] in LIGHTNING_COMMANDS or argv[0].startswith("-"):
        STOP.install(
            reset=True
        )  # from the start: a signal during set-up is a stop, not a crash or exit 0
    try:
        run(argv[0], argv[1:], argv, from_shell)
    except StopNow:
        print("stopped by a second SIGINT without saving", file=sys.stderr)
        return 130
    except SystemExit as exit:
        # Lightning's SIGTERMException (a SystemExit with no code) from the sanity check or the
        # start of fit, when a stop signal came before training: nothing trained, exit 143/138/130
        if STOP.received is None or exit.code not in (None, 0):
            raise
        if _is_rank_zero():
            print(
                str(TrainingStopped(STOP.received, None, 0)).replace(
                    "before training step 1", "before training"
                ),
                file=sys.stderr,
            )
        return 128 + STOP.received
    except NothingToDo as done:
        if _is_rank_zero():
            print(str(done), file=sys.stderr)
        return 0
    except TrainingStopped as stop:
        # a cluster's SIGTERM/SIGUSR1 or Ctrl-C: a normal event, the state is saved
        if _is_rank_zero():
            print(str(stop), file=sys.stderr)
        return stop.exit_code
    except (ValueError, FileNotFoundError) as err:
        # User errors: one line naming the field or file, no traceback. An error raised in a
        # DataLoader worker arrives wrapped with the worker's traceback: keep its last line.
        message = str(err).strip()
        if "Original Traceback" in message:
            message = message.splitlines()[-1].split(": ", 1)[-1]
        # every rank meets the same bad input: said once; a shard's own error by its rank
        if _is_rank_zero() or isinstance(err, ShardError):
            print(f"error: {message}", file=sys.stderr)
        return 2
    except Exception as err:
        if type(err).__name__ != "MisconfigurationException":  # Lightning's (imported lazily)
            raise
        # a trainer setup this machine cannot run (strategy fsdp, accelerator gpu on a CPU)
        if _is_rank_zero():
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            print(
                f"error: {first} (trainer.*: configs/trainer/fsdp.yaml and accelerator gpu need "
                "GPUs; on CPU use configs/trainer/ddp.yaml or fsdp2.yaml)",
                file=sys.stderr,
            )
        return 2
    return 0


def _is_rank_zero() -> bool:
    """The process the user started on this node (Lightning starts the other ranks with
    ``LOCAL_RANK`` set); their copy of the same error is not printed again."""
    return os.environ.get("LOCAL_RANK", "0") == "0"

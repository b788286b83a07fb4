"""compare's figure and table: the panels a person reads, the steps a run trained, and a run
compared with itself said as such."""

import re

import pytest

from electra_lightning.report.compare import DPI, compare, figure, read_run, table

from .helpers import summary_of

TITLES = [
    "total loss (1·MLM + 50·RTD)",
    "generator MLM loss",
    "discriminator RTD loss",
    "masked-token accuracy (gen_acc)",
    "replaced-token ranking (val/disc_auc)",
    "replaced tokens found (disc recall, F1)",
    "nats above word frequencies / base rate",
]


def write_run(path, steps=300, probe=False):
    """A CSVLogger-style run: training rows every 10 steps (0-based, as Lightning logs them),
    validation every 100."""
    path.mkdir(parents=True)
    (path / "hparams.yaml").write_text("size:\n  hidden_size: 64\n")
    header = [
        "step",
        "train/loss",
        "train/gen_acc",
        "train/disc_recall",
        "val/loss",
        "val/disc_auc",
        "val/disc_f1",
        *(["probe/sst2_acc"] if probe else []),
    ]
    lines = [",".join(header)]
    for step in range(9, steps, 10):
        lines.append(f"{step},30.0,0.05,0.0,,,{',' if probe else ''}")
        if (step + 1) % 100 == 0:
            row = [str(step), "", "", "", "26.0", "0.6", "0.1"]
            if probe:
                row.append("0.7")
            lines.append(",".join(row))
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    return path


def test_the_figure_is_a_titled_grid_of_the_panels_a_person_reads(tmp_path):
    run = read_run(str(write_run(tmp_path / "a")))
    fig = figure([run])
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles == TITLES
    width, height = fig.get_size_inches() * DPI
    assert width <= 1600 and height <= 1000
    assert fig._suptitle.get_text() == "a (300 steps)".replace("a", run.name, 1)
    auc = fig.axes[TITLES.index("replaced-token ranking (val/disc_auc)")]
    assert auc.get_ylim() == (0.4, 1.0)
    assert any(line.get_ydata()[0] == 0.5 for line in auc.get_lines())  # the chance line
    assert "chance 0.5" in [t.get_text() for t in auc.get_legend().get_texts()]


def test_a_logged_probe_gets_its_panel(tmp_path):
    run = read_run(str(write_run(tmp_path / "a", probe=True)))
    titles = [ax.get_title() for ax in figure([run]).axes if ax.axison]
    assert titles == [*TITLES, "downstream probe/sst2_acc"]


def test_steps_trained_is_the_last_logged_step_plus_one(tmp_path):
    run = read_run(str(write_run(tmp_path / "a", steps=300)))
    row = next(line for line in table([run]).splitlines() if line.startswith("steps trained"))
    assert row.split()[-1] == "300"


@pytest.mark.parametrize("same", [True, False])
def test_a_run_compared_with_itself_is_said(tmp_path, capsys, same):
    a = write_run(tmp_path / "a")
    b = a if same else write_run(tmp_path / "b")
    compare([str(a), str(b) + ("/" if same else "")], str(tmp_path / "cmp.png"))
    out = capsys.readouterr().out
    assert ("is the same run as" in out) == same
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"


TRAIN_ONLY = (
    "step,train/gen_acc,train/disc_recall,train/replaced_frac,train/tokens_seen\n"
    "9,0.05,0.0,0.14,20480\n"
)


def test_summary_alone_refers_to_no_predictions_and_says_where_figures_come_from(tmp_path):
    text = summary_of(tmp_path, TRAIN_ONLY)
    assert "Reading the predictions above" not in text
    assert "What its predictions will look like" in text
    # no validation logged: the figures are the training batches', and it says so
    assert "on its training batches (no validation logged)" in text
    assert "held-out" not in text


def test_summary_after_the_predict_commands_reads_them(tmp_path):
    text = summary_of(tmp_path, TRAIN_ONLY, after_predictions=True)
    assert "Reading the predictions above:" in text


@pytest.mark.parametrize(
    ("first", "last", "word"),
    [
        (0.55, 0.70, "rising"),
        (0.60, 0.61, "flat"),
        (0.70, 0.60, "falling)"),
        (0.60, 0.50, "falling to chance"),
        (0.51, 0.50, "flat at chance"),
    ],
)
def test_summary_reads_the_auc_trend_honestly(tmp_path, first, last, word):
    rows = (
        "step,val/gen_acc,val/disc_recall,val/replaced_frac,val/disc_auc\n"
        f"99,0.05,0.0,0.14,{first}\n199,0.06,0.0,0.14,{last}\n"
    )
    text = " ".join(summary_of(tmp_path, rows).split())
    assert f"{first:.2f} at step 100, {last:.2f} at step 200 ({word}".rstrip(")") in text
    assert ("falling" in text) == ("falling" in word)
    assert "on held-out text" in text


def test_the_auc_axis_widens_for_values_below_it(tmp_path):
    path = write_run(tmp_path / "a")
    text = (path / "metrics.csv").read_text().replace(",26.0,0.6,", ",26.0,0.37,", 1)
    (path / "metrics.csv").write_text(text)
    fig = figure([read_run(str(path))])
    auc = fig.axes[TITLES.index("replaced-token ranking (val/disc_auc)")]
    assert auc.get_ylim() == (0.35, 1.0)  # 0.37 stays on the chart


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1,abc,,,,,", "metrics.csv:3: not a metrics row (could not convert string to float"),
        ("1,2,3,4,5,6,7,8", "metrics.csv:3: not a metrics row (8 fields for 7 columns)"),
    ],
)
def test_a_broken_metrics_file_is_one_line_naming_the_run_and_line(tmp_path, line, message):
    path = write_run(tmp_path / "a")
    rows = (path / "metrics.csv").read_text().splitlines()
    (path / "metrics.csv").write_text("\n".join([rows[0], rows[1], line, *rows[2:]]) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}/{message}")):
        read_run(str(path))


def test_a_broken_hparams_file_names_the_file(tmp_path):
    path = write_run(tmp_path / "a")
    (path / "hparams.yaml").write_text("size: [1, 2\n")
    with pytest.raises(ValueError, match=r"hparams.yaml:2: not valid YAML"):
        read_run(str(path))


@pytest.mark.slow
def test_the_downstream_probe_is_logged_to_csv_and_wandb_and_compared(
    tmp_path, corpus_dir, tokenizer_dir
):
    """configs/callbacks/probe.yaml added to a pretraining run: probe/sst2_acc in the CSV log and
    the offline W&B run at the probe steps, and in compare's table and figure."""

    from .helpers import REPO, run_cli, shared_data, tiny_args

    glue = shared_data("glue")
    probe = [
        "--config",
        str(REPO / "configs/callbacks/probe.yaml"),
        f"--probe.data_dir={glue}",
        "--probe.every_n_steps=2",
        "--probe.train_examples=64",
        "--probe.dev_examples=128",
    ]
    runs = {}
    for logger in ("csv", "wandb"):  # a process each: W&B writes its run out when it exits
        workdir = tmp_path / logger
        workdir.mkdir()
        argv = [
            *map(str, tiny_args(corpus_dir, tokenizer_dir, steps=4)),
            "--config",
            str(REPO / f"configs/logger/{logger}.yaml"),
            *(["--trainer.logger.init_args.save_dir=runs"] if logger == "csv" else []),
            *probe,
        ]
        run_cli("fit", *argv, cwd=workdir, env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
        if logger == "csv":
            runs[logger] = read_run(str(next(workdir.rglob("metrics.csv")).parent))
        else:
            runs[logger] = read_run(str(workdir / "runs" / "tiny"))  # the run's directory
    for logger, run in runs.items():
        steps = [s for s, _ in sorted(run.history["probe/sst2_acc"])]
        assert steps == [2, 4], (logger, steps)
        assert all(0.3 < v < 1 for _, v in run.history["probe/sst2_acc"])
    csv_values = sorted(runs["csv"].history["probe/sst2_acc"])
    assert csv_values == sorted(runs["wandb"].history["probe/sst2_acc"])  # deterministic
    assert any(
        line.startswith("final probe/sst2_acc") for line in table(list(runs.values())).splitlines()
    )
    titles = [ax.get_title() for ax in figure(list(runs.values())).axes if ax.axison]
    assert "downstream probe/sst2_acc" in titles


@pytest.mark.parametrize(
    ("tasks", "message"),
    [(["mrpc"], "not a single-sentence binary task"), (["nope"], "unknown task 'nope'")],
)
def test_the_probe_refuses_tasks_it_cannot_read(tasks, message):
    from electra_lightning.finetune.probe import DownstreamProbe

    with pytest.raises(ValueError, match=message):
        DownstreamProbe(tasks=tasks)
    assert DownstreamProbe().tasks == []  # off by default


def test_the_probe_reads_glue_from_a_hub_dataset(tmp_path):
    """``probe.data_dir=hub:NAME``: a dataset laid out as ``nyu-mll/glue`` (here a local mirror,
    read as the Hub's) gives the examples the GLUE files give; a config it lacks is one line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from electra_lightning.finetune.probe import glue_split

    from .helpers import shared_data

    glue = str(shared_data("glue"))
    mirror = tmp_path / "glue"
    (mirror / "sst2").mkdir(parents=True)
    files = {split: glue_split(glue, "sst2", split, 40) for split in ("train", "dev")}
    for split, hub in (("train", "train"), ("dev", "validation")):
        examples = files[split]
        table = {"sentence": [e.text for e in examples], "label": [e.label for e in examples]}
        pq.write_table(pa.table(table), mirror / "sst2" / f"{hub}-00000-of-00001.parquet")
    (mirror / "README.md").write_text(
        "---\nconfigs:\n- config_name: sst2\n  data_files:\n  - split: train\n"
        "    path: sst2/train-*\n  - split: validation\n    path: sst2/validation-*\n---\n"
    )
    for split in ("train", "dev"):
        from_hub = glue_split(f"hub:{mirror}", "sst2", split, 25)
        assert [(e.text, e.label) for e in from_hub] == [
            (e.text, e.label) for e in files[split][:25]
        ]
        assert len(glue_split(f"hub:{mirror}", "SST-2", split, 0)) == 40  # 0: all of it
    with pytest.raises(
        ValueError,
        match=r"^probe.data_dir: .*'.*glue' \(config cola, split train\) cannot be opened",
    ):
        glue_split(f"hub:{mirror}", "cola", "train", 5)
    with pytest.raises(ValueError, match=r"^probe.data_dir: 'hub:' needs a dataset name"):
        glue_split("hub: ", "sst2", "train", 5)


def test_summary_minutes_add_up_the_logged_windows(tmp_path):
    """Two equal windows at 1,000 and 100 tokens/s over 2,000 tokens: 1 s + 10 s of training
    (the plain mean of the rates said 3.6 s)."""
    rows = "step,train/tokens_per_sec,train/tokens_seen\n9,1000,1000\n19,100,2000\n"
    text = " ".join(summary_of(tmp_path, rows).split())
    assert f"in {11 / 60:.1f} minutes" in text, text

from pathlib import Path

import pytest

from stages.config import SECTIONS, load_config, render_example
from stages.runtime.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_example_yaml_documents_every_key_with_its_default():
    text = (REPO / "example.yaml").read_text()
    assert text == render_example()
    assert load_config(REPO / "example.yaml") == load_config()
    for line in text.splitlines():
        if line.startswith("  "):
            assert "  # " in line, f"key without a comment: {line}"
    assert set(SECTIONS) <= {line.rstrip(":") for line in text.splitlines() if line.endswith(":")}


def test_precedence_file_then_options_then_set(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("extract_frames:\n  short_side: 100\n  workers: 3\ndata:\n  root: a\n")
    resolved = load_config(config, {"extract_frames.short_side": 112, "data.root": None},
                           ["extract_frames.short_side=144"])
    assert resolved.extract_frames.short_side == 144
    assert resolved.extract_frames.workers == 3
    assert resolved.data.root == "a"
    assert load_config(config, {"extract_frames.short_side": 112}).extract_frames.short_side == 112


@pytest.mark.parametrize(
    "item, message",
    [
        ("extract_frames.shortside=3", "unknown config key extract_frames.shortside"),
        ("extract_frame.workers=3", "unknown config section 'extract_frame'"),
        ("extract_frames.short_side=abc", "extract_frames.short_side must be an integer"),
        ("extract_frames.short_side=8", "extract_frames.short_side must be between 16 and 4096"),
        ("compute_flow.method=lucas", "compute_flow.method must be one of dis, farneback, tvl1"),
        ("data.split=4", "data.split must be one of 1, 2, 3"),
        ("compute_flow.bound=-1", "compute_flow.bound must be between"),
        ("extract_frames.workers=true", "extract_frames.workers must be an integer"),
        ("workers=2", "must name section.key"),
        ("data.root", "must look like section.key=value"),
        ("compute_flow.bound=.nan", "compute_flow.bound must be a finite number"),
        ("pretrain.lr=.inf", "pretrain.lr must be a finite number"),
        ("pretrain.p_alpha=-.inf", "pretrain.p_alpha must be a finite number"),
        ("pretrain.epochs=1e3", "pretrain.epochs must be an integer"),
    ],
)
def test_bad_keys_fail_with_one_line_naming_key(item, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, None, [item])
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_set_accepts_hyphens_nulls_and_floats():
    resolved = load_config(None, None, ["extract-frames.fps=12.5", "data.name=null",
                                        "compute_flow.bound=10"])
    assert resolved.extract_frames.fps == 12.5
    assert resolved.data.name is None
    assert resolved.compute_flow.bound == 10.0


def test_bad_yaml_file_names_file_and_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("data:\n  root: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml line"):
        load_config(config)
    config.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must map section names"):
        load_config(config)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml")


def test_float_keys_take_scientific_notation_in_files_and_set(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("finetune:\n  lr: 1e-4\n  backbone_lr: 2.5E-5\n")
    resolved = load_config(config, None, ["pretrain.lr=5e-3", "linear_probe.lr=+1e-2"])
    assert resolved.finetune.lr == 1e-4 and resolved.finetune.backbone_lr == 2.5e-5
    assert resolved.pretrain.lr == 5e-3 and resolved.linear_probe.lr == 1e-2
    with pytest.raises(ConfigError, match="finetune.lr must be a number"):
        load_config(None, None, ["finetune.lr=1e-4x"])


def test_evaluation_defaults_are_the_papers_protocol():
    """Fine-tuning and the linear probe test 10 windows x 10 crops a video (the paper's
    protocol, after CoCLR); fewer crops are a faster choice the user makes."""
    config = load_config()
    for section in (config.finetune, config.linear_probe):
        assert (section.windows, section.crops) == (10, 10)
    assert config.finetune.val_fraction > 0 and config.linear_probe.val_fraction > 0
    assert load_config(set_items=["finetune.val_fraction=0"]).finetune.val_fraction == 0


CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# Table 3 of the paper: (clustering, multi-view, temporal loss) of each shipped UCF101 row.
TABLE_3 = {"ucf101-r3d18.yaml": (True, True, True),
           "ucf101-r3d18-no-clustering.yaml": (False, True, True),
           "ucf101-r3d18-no-multiview-no-temporal.yaml": (True, False, False),
           "ucf101-r3d18-no-temporal.yaml": (True, True, False),
           "ucf101-r3d18-no-multiview.yaml": (True, False, True)}


@pytest.mark.parametrize("name", sorted(TABLE_3))
def test_shipped_ucf101_configs_are_the_papers_table_3_rows(name):
    config = load_config(CONFIGS / name)
    p = config.pretrain
    assert (config.data.dataset, p.arch, p.clip_length, p.crop_size) == (
        "ucf101", "r3d_18", 16, 128)
    assert (p.epochs, p.batch_size, p.lr, p.momentum, p.p_alpha) == (600, 32, 0.1, 0.5, 0.2)
    clustering = p.pseudo_labels == "finch" and p.cluster_every == 5
    assert (clustering, p.multiview, p.temporal_loss) == TABLE_3[name]
    assert p.pseudo_labels in ("finch", "none")
    # Crops come from frames of the official short side: never upsampled.
    assert config.extract_frames.short_side == 240


def test_every_shipped_config_resolves_and_runs_apart():
    names = sorted(path.name for path in CONFIGS.glob("*.yaml"))
    assert set(TABLE_3) < set(names) and "kinetics400-r3d18.yaml" in names
    runs = [load_config(CONFIGS / name).pretrain.run_name for name in names]
    assert len(set(runs)) == len(runs)  # each row's run sits beside the others
    kinetics = load_config(CONFIGS / "kinetics400-r3d18.yaml")
    assert (kinetics.data.dataset, kinetics.pretrain.epochs, kinetics.pretrain.p_alpha,
            kinetics.pretrain.batch_size) == ("kinetics400", 340, 0.5, 8 * 13)


BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
pretrain:
  lr: [*g, *g, *g, *g, *g, *g, *g, *g, *g]
"""


def test_aliases_that_expand_past_a_config_are_refused_at_once(tmp_path):
    """A 1 KB file that stands for 9^8 values: refused by counting, never expanded (the error
    message once quoted the value whole: gigabytes)."""
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)
    with pytest.raises(ConfigError, match="expands to over 10,000 values"):
        load_config(path)
    with pytest.raises(ConfigError, match="--set pretrain.lr holds over"):
        load_config(set_items=["pretrain.lr=" + BILLION_LAUGHS.replace("\n", ", ")
                               .replace("a: &a", "{a: &a").rstrip(", ") + "}"])


def test_a_few_aliases_still_work_and_bad_values_are_quoted_short(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text("pretrain:\n  lr: &rate 0.05\nfinetune:\n  lr: *rate\n")
    config = load_config(path)
    assert config.pretrain.lr == config.finetune.lr == 0.05
    long = tmp_path / "long.yaml"
    long.write_text("pretrain:\n  lr: [" + ", ".join(["1"] * 500) + "]\n")
    with pytest.raises(ConfigError) as error:
        load_config(long)
    assert "pretrain.lr" in str(error.value) and len(str(error.value)) < 200


def test_a_file_that_is_not_a_config_is_one_line(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    deep = tmp_path / "deep.yaml"
    deep.write_text("pretrain:\n  lr: " + "[" * 600 + "]" * 600 + "\n")
    for path in (binary, deep):
        with pytest.raises(ConfigError, match=str(path.name)):
            load_config(path)


@pytest.mark.parametrize("key", ["pretrain.run_name", "data.name"])
@pytest.mark.parametrize("bad", ["../../../../x", "runs/a", "..", ".hidden", "-rf",
                                 "a\\b", "tab\there", "x" * 200, ""])
def test_folder_names_are_names_never_paths(key, bad):
    """A run name from a shared YAML or a typo must not reach outside the workspace or into
    a folder slic did not make."""
    with pytest.raises(ConfigError, match=f"{key} must be a folder name"):
        load_config(set_items=[f"{key}={bad}"] if bad else None,
                    options={key: bad} if not bad else None)


@pytest.mark.parametrize("good", ["demo-slic-full", "r3d_18-finch", "run.2", "Läufe", "v1+flow"])
def test_ordinary_names_are_kept(good):
    config = load_config(set_items=[f"pretrain.run_name={good}", f"data.name={good}"])
    assert config.pretrain.run_name == config.data.name == good

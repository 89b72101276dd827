"""--config: YAML/TOML options, command-line flags override, unknown keys rejected."""

import pytest

from revise_prep.cli import build_parser, main
from revise_prep.errors import InputError
from revise_prep.cli.config_file import expand_config


def parse(argv):
    parser = build_parser()
    return parser.parse_args(expand_config(parser, argv))


def test_yaml_values_and_override(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("input: pairs.json\noutput_dir: out\nframe_num: 17\ntarget-size: [352, 640]\n"
                   "t5_cpu: true\nprogress: false\nvae:\n  sampling_rate: 2\n")
    args = parse(["vae", "--config", str(cfg)])
    assert (args.input, args.output_dir, args.frame_num, args.interval) == ("pairs.json", "out", 17, 2)
    assert args.target_size == (352, 640) and args.t5_cpu is True and args.progress is False
    args = parse(["--config", str(cfg), "vae", "--frame-num", "9", "--output_dir", "elsewhere"])
    assert args.frame_num == 9 and args.output_dir == "elsewhere" and args.interval == 2


def test_toml_and_unknown_key(tmp_path):
    cfg = tmp_path / "job.toml"
    cfg.write_text('input = "a.json"\noutput-dir = "o"\n[vae]\nskip_num = 4\n')
    args = parse(["vae", f"--config={cfg}"])
    assert args.skip == 4 and args.input == "a.json"
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: a.json\noutput_dir: o\nframes_per_clip: 3\n")
    with pytest.raises(InputError, match="unknown option 'frames_per_clip'"):
        parse(["vae", "--config", str(bad)])
    with pytest.raises(SystemExit):  # through the real entry point: a usage error, exit status 2
        main(["vae", "--config", str(bad)])

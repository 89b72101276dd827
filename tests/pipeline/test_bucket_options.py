"""--buckets / --frame-buckets: flags, config keys, presets in --help, one-line errors up front."""

import pytest

from revise_prep.cli import build_parser, options
from revise_prep.cli.config_file import expand_config
from revise_prep.video.buckets import PRESETS


def frames(argv):
    parser = build_parser()
    return options.frame_settings(parser.parse_args(expand_config(parser, argv)))


def test_flags_and_config_keys(tmp_path):
    f = frames(["vae", "--input", "a.json", "--output-dir", "o", "--buckets", "32x48,48x32", "--frame-buckets", "9,5"])
    assert f.buckets == ((32, 48), (48, 32)) and f.frame_buckets == (9, 5) and f.frame_num == 9
    cfg = tmp_path / "job.yaml"
    cfg.write_text("input: a.json\noutput_dir: o\nrun:\n  buckets: wan-480p\n  frame-buckets: [49, 17]\n")
    f = frames(["run", "--config", str(cfg), "--model-path", "m"])
    assert f.buckets == PRESETS["wan-480p"] and f.frame_buckets == (49, 17) and f.frame_num == 49
    cfg.write_text("input: a.json\noutput_dir: o\nbuckets: [480x832, 832x480]\n")
    assert frames(["vae", "--config", str(cfg)]).buckets == ((480, 832), (832, 480))
    plain = frames(["vae", "--input", "a.json", "--output-dir", "o"])
    assert plain.buckets is None and plain.frame_buckets is None


@pytest.mark.parametrize("flag, value, message", [("--buckets", "480x830", "multiples of 16"),
                                                  ("--buckets", "wan-1080p", "HEIGHTxWIDTH"),
                                                  ("--frame-buckets", "81,48", "4n+1")])
def test_bad_values_are_one_line_usage_errors(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        frames(["vae", "--input", "a.json", "--output-dir", "o", flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err and flag in err


def test_help_lists_the_presets(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["vae", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "wan-480p = 480x832, 832x480, 624x624, 544x720, 720x544" in text and "wan-720p" in text


def test_small_bucket_and_video_path_options(tmp_path, capsys):
    parser = build_parser()
    args = parser.parse_args(["run", "--input", "a.json", "--output-dir", "o", "--model-path", "m"])
    run = options.run_settings(args)
    assert (run.min_bucket_records, run.merge_small_buckets, run.relative_video_paths) == (64, False, False)
    cfg = tmp_path / "job.yaml"
    cfg.write_text("input: a.json\noutput_dir: o\nmerge-small-buckets: true\nmin_bucket_records: 8\n")
    run = options.run_settings(parser.parse_args(expand_config(parser, ["vae", "--config", str(cfg),
                                                                        "--relative-video-paths"])))
    assert (run.min_bucket_records, run.merge_small_buckets, run.relative_video_paths) == (8, True, True)
    ar = parser.parse_args(["ar", "--data-file", "d", "--result-folder", "r", "--model-path", "m",
                            "--min-bucket-records", "16", "--relative-video-paths"])
    assert (ar.min_bucket_records, ar.relative_video_paths, hasattr(ar, "merge_small_buckets")) == (16, True, False)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["vae", "--input", "a.json", "--output-dir", "o", "--min-bucket-records", "0"])
    assert exc.value.code == 2 and "--min-bucket-records" in capsys.readouterr().err


def test_merging_needs_buckets(tmp_path):
    from revise_prep.errors import InputError
    from revise_prep.pipeline.bucket_plan import plan_buckets
    from revise_prep.settings import FrameSettings, RunSettings

    run = RunSettings(input=str(tmp_path / "a.json"), output_dir=str(tmp_path / "o"), merge_small_buckets=True)
    with pytest.raises(InputError, match="needs --buckets or --frame-buckets"):
        plan_buckets(run, FrameSettings(), tmp_path)
    assert plan_buckets(RunSettings(input="a.json", output_dir="o"), FrameSettings(), tmp_path) is None

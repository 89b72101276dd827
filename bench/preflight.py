"""Time to the error for common mistakes, and time from the command to the first model load.

Each case is one `revise-prep` command a new user might get wrong (tiny models from `revise_prep.testing`,
`--device cpu`), run as a subprocess; the table gives its exit status, the seconds until it ended, the lines it
wrote to stderr, whether a traceback was among them, and its last line. `--first-load` adds the time from the
command to the log line "loading VAE from" for an input of `--entries` pairs (default 100,000, each with its own
source and target file: symlinks to a few real videos), i.e. reading, planning and the pre-flight checks.

Give `--src` several times to compare code trees side by side (each run with that folder first on PYTHONPATH),
interleaved case by case: `python bench/preflight.py --src /work/main/src --src src`.
Usage: python bench/preflight.py [--src DIR ...] [--cases SUBSTRINGS] [--entries 100000] [--first-load [--repeats 3]]
                                 [--quick] [--log FILE] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["--frame-num", "5", "--sampling-rate", "2", "--target-size", "32,48", "--text-len", "16", "--device", "cpu",
        "--num-workers", "0"]
TEXT = "Turn the moving shapes into glowing lanterns at dusk"
HOLD_LOCK = ("import sys, time\nfrom revise_prep.pipeline.locks import ShareLock\n"
             "with ShareLock(sys.argv[1], 0, 1):\n    print('held', flush=True)\n    time.sleep(600)\n")


def build(root: Path, entries: int, full: bool = True) -> dict[str, Path]:
    """Checkpoints, videos, input lists and a record of each kind the cases need (``full``: also the VILA
    checkpoints and a step-1 folder, which only some cases need)."""
    import torch

    from revise_prep.testing.tiny_models import make_tiny_wan_release
    from revise_prep.testing.tiny_vila import make_tiny_vila
    from revise_prep.testing.videos import make_video

    ck = root / "checkpoints"
    wan = make_tiny_wan_release(ck / "Wan2.1-tiny", layout="original")
    vila = make_tiny_vila(ck / "VILA-tiny") if full else ck / "VILA-tiny"
    no_t5 = shutil.copytree(wan, ck / "Wan2.1-no-t5")
    (no_t5 / "models_t5_umt5-xxl-enc-bf16.pth").unlink()
    no_tok = shutil.copytree(wan, ck / "Wan2.1-no-tokenizer")
    shutil.rmtree(no_tok / "google")
    bad_vae = shutil.copytree(wan, ck / "Wan2.1-bad-vae")
    (bad_vae / "Wan2.1_VAE.pth").write_bytes(b"<html>rate limited</html>\n" * 40)  # a failed download
    no_proj = ck / "VILA-no-projector"
    if full:
        shutil.copytree(vila, no_proj)
        (no_proj / "mm_projector" / "model.safetensors").unlink()
    videos = root / "data" / "videos"
    for i in range(4):
        for role in ("src", "tgt"):
            make_video(videos / f"p{i}_{role}.mp4", frames=12, width=64, height=40, seed=2 * i + len(role))
    pairs = [{"source_video_path": f"videos/p{i}_src.mp4", "target_video_path": f"videos/p{i}_tgt.mp4",
              "instruction": f"{TEXT}, number {i}."} for i in range(4)]
    (root / "data" / "pairs.json").write_text(json.dumps(pairs))
    (root / "data" / "empty.json").write_text("[]")
    paths = {"root": root, "wan": wan, "vila": vila, "no_t5": no_t5, "no_tok": no_tok, "bad_vae": bad_vae,
             "no_proj": no_proj, "data": root / "data", "step1": root / "step1", "damaged": root / "damaged.pkl"}
    if full:
        make_step1(root, wan)
    if entries:
        paths["big"] = make_big(root / "big", sorted(videos.glob("*.mp4")), entries)
    del torch
    return paths


def make_step1(root: Path, wan: Path) -> None:
    """A step-1 folder for `ar`, a record cut in half, a record to convert and an unrelated file in its way."""
    subprocess.run([sys.executable, "-m", "revise_prep", "vae", "--ckpt-dir", str(wan), "--input",
                    str(root / "data" / "pairs.json"), "--video-root", str(root / "data"), "--output-dir",
                    str(root / "step1"), *TINY, "--no-progress"], check=True, capture_output=True)
    record = sorted((root / "step1").glob("*.pkl"))[0]
    (root / "damaged.pkl").write_bytes(record.read_bytes()[: record.stat().st_size // 2])
    shutil.copy(record, root / "record.pkl")
    (root / "record.safetensors").write_text("an unrelated file the user keeps\n")


def make_big(big: Path, real: list[Path], entries: int) -> Path:
    """``entries`` pairs, each with its own source and target file (symlinks to a few real videos)."""
    (big / "v").mkdir(parents=True)
    rows = []
    for i in range(entries):
        for role in ("s", "t"):
            os.symlink(real[(2 * i + (role == "t")) % len(real)], big / "v" / f"{i}{role}.mp4")
        rows.append({"source_video_path": f"v/{i}s.mp4", "target_video_path": f"v/{i}t.mp4",
                     "instruction": f"{TEXT}, number {i}."})
    (big / "pairs.json").write_text(json.dumps(rows))
    return big


def cases(p: dict[str, Path], out: Path) -> list[tuple[str, list[str], dict]]:
    """(name, argv after `revise-prep`, options: cwd, lock, nobody, ...)"""
    data, wan = p["data"], str(p["wan"])
    vae = ["vae", "--input", str(data / "pairs.json"), "--video-root", str(data), *TINY, "--no-progress"]
    run = ["run", "--input", str(data / "pairs.json"), "--video-root", str(data), *TINY, "--no-progress"]
    return [
        ("folder locked by another run", [*vae, "--ckpt-dir", wan, "--output-dir", str(out / "locked")],
         {"lock": out / "locked.revise-prep"}),
        ("read-only output folder", [*vae, "--ckpt-dir", wan, "--output-dir", str(out / "ro")],
         {"read_only": out / "ro"}),
        ("misspelled --video-root", [*vae[:4], str(data) + "s", *vae[5:], "--ckpt-dir", wan, "--output-dir",
                                     str(out / "root")], {}),
        ("videos relative to another folder", [*vae[:3], *vae[5:], "--ckpt-dir", wan, "--output-dir",
                                               str(out / "cwd")], {"cwd": p["root"]}),
        ("empty input", ["vae", "--input", str(data / "empty.json"), *TINY, "--ckpt-dir", wan, "--output-dir",
                         str(out / "empty")], {}),
        ("release without the T5 weights", [*vae, "--ckpt-dir", str(p["no_t5"]), "--output-dir", str(out / "t5")], {}),
        ("release without the tokenizer", [*vae, "--ckpt-dir", str(p["no_tok"]), "--output-dir", str(out / "tok")],
         {}),
        ("misspelled relative --ckpt-dir", [*vae, "--ckpt-dir", "checkpoints/Wan2.1-tni", "--output-dir",
                                            str(out / "hub")], {"cwd": p["root"]}),
        ("--ckpt-dir is the VILA folder", [*vae, "--ckpt-dir", str(p["vila"]), "--output-dir", str(out / "vila")],
         {}),
        ("Wan2.1_VAE.pth is not a checkpoint", [*vae, "--ckpt-dir", str(p["bad_vae"]), "--output-dir",
                                                str(out / "badvae")], {}),
        ("run: misspelled --model-path", [*run, "--ckpt-dir", wan, "--model-path", str(p["vila"]) + "x",
                                          "--output-dir", str(out / "mp")], {}),
        ("run: VILA without projector weights", [*run, "--ckpt-dir", wan, "--model-path", str(p["no_proj"]),
                                                 "--output-dir", str(out / "proj")], {}),
        ("ar: misspelled --video-root", ["ar", "--data-file", str(p["step1"]), "--model-path", str(p["vila"]),
                                         "--video-root", str(data) + "s", "--result-folder", str(out / "ar"),
                                         "--device", "cpu", "--num-workers", "0", "--no-progress"], {}),
        ("--num-workers -1", [*vae, "--ckpt-dir", wan, "--output-dir", str(out / "nw"), "--num-workers", "-1"], {}),
        ("--target-size 63,111", [*vae, "--ckpt-dir", wan, "--output-dir", str(out / "ts"), "--target-size",
                                  "63,111"], {}),
        ("validate of []", ["validate", str(data / "empty.json"), "--report", str(out / "v.jsonl")], {}),
        ("inspect a truncated record", ["inspect", str(p["damaged"])], {}),
        ("preview a truncated record", ["preview", str(p["damaged"]), "--out", str(out / "pv.png")], {}),
        ("convert onto an existing file", ["convert", str(p["root"] / "record.pkl"), "--to", "safetensors"],
         {"restore": p["root"] / "record.safetensors"}),
    ]


def run_case(argv: list[str], opts: dict, src: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve()), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env.pop("HF_HUB_OFFLINE", None)  # as a user has it: the misspelled path case goes to the hub
    prefix, holder = [], None
    out_dir = next((Path(a) for i, a in enumerate(argv) if argv[i - 1] in ("--output-dir", "--result-folder")),
                   None)
    if out_dir is not None and out_dir.exists():  # a fresh folder each time
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.rmtree(out_dir.parent / (out_dir.name + ".revise-prep"), ignore_errors=True)
    if opts.get("restore"):
        opts["restore"].write_text("an unrelated file the user keeps\n")
    if opts.get("lock"):
        opts["lock"].mkdir(parents=True, exist_ok=True)
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(opts["lock"])], env=env,
                                  stdout=subprocess.PIPE, text=True)
        holder.stdout.readline()
    if opts.get("read_only"):
        folder: Path = opts["read_only"]
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        if os.geteuid() == 0 and shutil.which("setpriv"):
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    start = time.perf_counter()
    proc = subprocess.run([*prefix, sys.executable, "-m", "revise_prep", *argv], capture_output=True, text=True,
                          env=env, cwd=opts.get("cwd"), timeout=600)
    seconds = time.perf_counter() - start
    if holder is not None:
        holder.kill()
        holder.wait()
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return {"rc": proc.returncode, "s": seconds, "lines": len(lines), "tb": "Traceback" in proc.stderr,
            "last": lines[-1] if lines else "", "stderr": proc.stderr}


def first_load(big: Path, wan: Path, out: Path, src: str) -> tuple[float, float]:
    """(seconds from the command to the "loading VAE from" line, seconds to exit after it was killed)."""
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "revise_prep", "vae", "--input", str(big / "pairs.json"),
                             "--video-root", str(big), "--ckpt-dir", str(wan), "--output-dir", str(out), *TINY,
                             "--no-progress"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = float("nan")
    for line in proc.stderr:
        if "loading VAE from" in line:
            seen = time.perf_counter() - start
            break
    proc.kill()
    proc.wait()
    return seen, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", action="append", help="code tree(s) to compare (default: this repository's src)")
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--first-load", action="store_true", help="also time the command to the first model load")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the first-load timing")
    ap.add_argument("--cases", help="comma-separated substrings: run only the matching cases")
    ap.add_argument("--quick", action="store_true", help="2 cases, one first-load timing of a 2,000-pair input, "
                                                         "this tree only (smoke test)")
    ap.add_argument("--log", help="write every case's stderr to this file")
    ap.add_argument("--out", help="write the table (markdown) to this file")
    args = ap.parse_args()
    srcs = args.src or [str(Path(__file__).resolve().parents[1] / "src")]
    entries = 2000 if args.quick else args.entries
    with tempfile.TemporaryDirectory(prefix="bench-preflight-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # the read-only case runs as another user
        paths = build(root, entries if (args.first_load or args.quick) else 0, full=not args.quick)
        out = root / "out"
        out.mkdir()
        out.chmod(0o777)
        chosen = cases(paths, out)
        if args.quick:
            chosen = [c for c in chosen if c[0] in ("empty input", "--num-workers -1")]
        elif args.cases:
            chosen = [c for c in chosen if any(s in c[0] for s in args.cases.split(","))]
        head = "| case | " + " | ".join(f"exit, s, stderr lines ({Path(s).resolve().parent.name})" for s in srcs)
        rows = [head + " | last line (last tree) |", "|---|" + "---:|" * len(srcs) + "---|"]
        logs = []
        for name, argv, opts in chosen:
            results = [run_case(argv, opts, s) for s in srcs]  # interleaved: one tree after the other, per case
            cells = [f"{r['rc']}, {r['s']:.1f} s, {r['lines']}{' + traceback' if r['tb'] else ''}" for r in results]
            last = results[-1]["last"].replace("|", "/")
            rows.append(f"| {name} | " + " | ".join(cells) + f" | {last[:160]} |")
            logs += [f"### {name} ({s})\n$ revise-prep {' '.join(argv)}\n{r['stderr']}" for s, r in zip(srcs, results)]
        if args.first_load or args.quick:
            times: dict[str, list[float]] = {s: [] for s in srcs}
            for _ in range(1 if args.quick else args.repeats):  # interleaved: one tree after the other
                for s in srcs:
                    times[s].append(first_load(paths["big"], paths["wan"], out / "big", s)[0])
            rows.append(f"| command to first model load, {entries:,} pairs (median of {len(times[srcs[0]])}) | "
                        + " | ".join(f"{statistics.median(times[s]):.1f} s" for s in srcs)
                        + f" | all: {'; '.join(', '.join(f'{t:.1f}' for t in times[s]) for s in srcs)} |")
    table = "\n".join(rows)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    if args.log:
        Path(args.log).write_text("\n".join(logs))


if __name__ == "__main__":
    main()

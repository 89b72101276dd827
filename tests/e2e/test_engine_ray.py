"""``--engine ray``: the same records (bit for bit, whatever the torch thread count), failures and reports as the
local engine, resume across engines, exactly once when a worker is killed while encoding; supervised decoding
(a hang or a dead decoder costs only its sample), poison samples quarantined by the in-flight journal whichever
engine resumes, and no model loaded to plan. One local Ray cluster (2 CPUs) for the module."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray", reason="the Ray engine needs the [ray] extra (pip install 'revise-prep[ray]')")
pytest.importorskip("ray.data", reason="the Ray engine needs Ray Data (pip install 'revise-prep[ray]')")

from revise_prep.cli import main  # noqa: E402
from revise_prep.pipeline.dist import RankInfo  # noqa: E402
from revise_prep.pipeline.engines.ray import RayEngine  # noqa: E402
from revise_prep.pipeline.inflight import InflightJournal  # noqa: E402
from revise_prep.pipeline.step1 import Step1Factory, plan_items, read_input, run_step1  # noqa: E402
from revise_prep.records.layout import sidecar_of  # noqa: E402
from revise_prep.records import load_record  # noqa: E402
from revise_prep.records.atomic import TMP_PREFIX  # noqa: E402
from revise_prep.settings import EngineSettings, ExecutionSettings, FrameSettings, ModelSettings, RunSettings  # noqa: E402
from revise_prep.testing.tiny_vila import make_tiny_vila  # noqa: E402

from .conftest import FRAMES  # noqa: E402

MODELS = ["--vae-dtype", "float32", "--t5-dtype", "float32", "--text-len", "32", "--device", "cpu"]


@pytest.fixture(scope="module")
def ray_cluster():
    """One local cluster for the module (2 CPUs: one encoder actor, one decoding task at a time)."""
    ray.init(address="local", num_cpus=2, object_store_memory=256 * 1024 ** 2, include_dashboard=False, logging_level="WARNING", configure_logging=False)
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fault injector below ships by value
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def vila(tmp_path_factory) -> Path:
    return make_tiny_vila(tmp_path_factory.mktemp("vila") / "tiny_vila")


#: The torch threads of the process that encodes, on both engines: 4 makes the tiny VAE's float32 latents differ
#: from a one-thread encoder's in their last bits (a Ray actor's own default: Ray sets OMP_NUM_THREADS to its one
#: CPU). The engines' CPU budget gives them when torch's default is 4 and --cpu-threads 4: a 4-core machine.
THREADS = 4


@contextlib.contextmanager
def four_cores():
    """As on a machine whose torch default is THREADS threads (the CPU budget never gives more than that)."""
    from revise_prep.pipeline.engines.local import cpu_budget

    default, threads = cpu_budget._DEFAULT_THREADS, torch.get_num_threads()
    cpu_budget._DEFAULT_THREADS = THREADS
    try:
        yield
    finally:
        cpu_budget._DEFAULT_THREADS = default
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def same_threads():
    """Every run here, on either engine, is compared with ``outputs``: made with the same thread count."""
    with four_cores():
        yield


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, ray_cluster, dataset, wan_release, vila) -> Path:
    """vae, ar (both on the local engine's step-1 records) and run, once per engine, with THREADS torch threads."""
    root = tmp_path_factory.mktemp("engines")
    common = ["--input", str(dataset / "pairs.json"), "--video-root", str(dataset), "--ckpt-dir", str(wan_release),
              *MODELS, *FRAMES, "--num-workers", "0", "--no-progress", "--cpu-threads", str(THREADS)]
    with four_cores():
        for engine in ("local", "ray"):  # the dataset has samples that fail (exit status 4) on both engines alike
            e = ["--engine", engine]
            assert main(["vae", *common, *e, "--output-dir", str(root / engine / "vae")]) == 4
            assert main(["ar", "--data-file", str(root / "local" / "vae" / "vae_features.txt"), "--model-path",
                         str(vila), "--result-folder", str(root / engine / "ar"), "--video-root", str(dataset),
                         "--device", "cpu", "--num-workers", "0", "--no-progress", "--cpu-threads", str(THREADS),
                         *e]) == 0
            assert main(["run", *common, *e, "--model-path", str(vila), "--output-dir", str(root / engine / "run"),
                         "--keep-intermediate"]) == 4
    return root


def same_value(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(same_value(a[k], b[k]) for k in a)
    return a == b


def reports(folder: Path, list_name: str) -> Path:
    """Where a step's list and reports are: a step-1 folder's sidecar, else the folder itself."""
    return sidecar_of(folder) if list_name == "vae_features.txt" else folder


def assert_same_folder(a: Path, b: Path, list_name: str, count: int, resumed: int = 0) -> None:
    """Same list (names, order), same records key for key (tensors bit for bit, meta too), same failures."""
    ra_, rb_ = reports(a, list_name), reports(b, list_name)
    la, lb = (ra_ / list_name).read_text().splitlines(), (rb_ / list_name).read_text().splitlines()
    assert [Path(p).name for p in la] == [Path(p).name for p in lb] and len(la) == count
    assert all(Path(p).parent == b.resolve() for p in lb)
    for pa, pb in zip(la, lb):
        ra, rb = load_record(pa), load_record(pb)
        assert set(ra) == set(rb), pb
        for key in ra:
            assert same_value(ra[key], rb[key]), (pb, key)
    assert (ra_ / "failures.jsonl").read_text() == (rb_ / "failures.jsonl").read_text()
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (ra_, rb_))
    if resumed:
        sa["by_status"]["done"] -= resumed
        sa["by_status"]["resumed"] = resumed
    assert sa["by_status"] == sb["by_status"]
    assert not list(b.glob(TMP_PREFIX + "*"))


@pytest.mark.parametrize("step, list_name, count", [("vae", "vae_features.txt", 4), ("ar", "ar_features.txt", 4),
                                                    ("run", "train_list.txt", 4)])
def test_ray_records_equal_local(outputs, step, list_name, count):
    assert_same_folder(outputs / "local" / step, outputs / "ray" / step, list_name, count)
    folder = reports(outputs / "ray" / step, list_name)
    assert json.loads((folder / "summary.json").read_text())["world_size"] == 1
    config = json.loads((folder / "config.json").read_text())
    engine = (config.get("run") or config.get("settings"))["engine"]
    assert engine["name"] == "ray"
    key = "video_path" if step == "vae" else "video_path_tgt"  # the file read, named the same by both engines
    for line in (folder / list_name).read_text().splitlines():
        rec = load_record(line)
        assert Path(rec[key]).is_absolute() and Path(rec[key]).is_file(), rec[key]


def test_ray_keeps_intermediate_records(outputs):
    a = (sidecar_of(outputs / "local" / "run" / "vae_features") / "vae_features.txt").read_text().splitlines()
    b = (sidecar_of(outputs / "ray" / "run" / "vae_features") / "vae_features.txt").read_text().splitlines()
    assert [Path(p).name for p in a] == [Path(p).name for p in b] and len(b) == 4
    for pa, pb in zip(a, b):
        assert same_value(load_record(pa), load_record(pb))


def settings(dataset: Path, wan_release: Path, out: Path, engine: str = "local"):
    run = RunSettings(input=str(dataset / "pairs.json"), output_dir=str(out), video_root=str(dataset),
                      num_workers=0, progress=False, engine=EngineSettings(name=engine), cpu_threads=THREADS)
    frames = FrameSettings(frame_num=5, interval=2, height=32, width=48)
    models = ModelSettings(ckpt_dir=str(wan_release), vae_dtype="float32", t5_dtype="float32", text_len=32,
                           device="cpu")
    return run, frames, models


def records(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.pkl")}


def test_resume_across_engines(outputs, tmp_path, dataset, wan_release):
    """A local folder finishes under Ray, and a Ray folder under two torchrun-style ranks: only the missing
    record is made, the others are kept untouched, and the result equals a full run."""
    reference = outputs / "local" / "vae"
    for first, second in (("local", "ray"), ("ray", "local")):
        out = tmp_path / f"{first}-then-{second}"
        shutil.copytree(outputs / first / "vae", out)
        before = records(out)
        gone = sorted(before)[1]
        (out / gone).unlink()
        run, frames, models = settings(dataset, wan_release, out, second)
        if second == "ray":
            summary = run_step1(run, frames, models)
        else:
            assert run_step1(run, frames, models, rank=RankInfo(0, 2, 0)) is None  # waits for rank 1
            summary = run_step1(run, frames, models, rank=RankInfo(1, 2, 0))
        assert summary["by_status"]["done"] == 1 and summary["by_status"]["resumed"] == 3
        after = records(out)
        assert set(after) == set(before)
        assert {n: t for n, t in after.items() if n != gone} == {n: t for n, t in before.items() if n != gone}
        assert_same_folder(reference, out, "vae_features.txt", 4, resumed=3)


class KillWhileEncoding:
    """A step-1 factory whose first encoder, once the VAE and umT5 have run, kills its own Ray worker process
    (SIGKILL, before the record is written); the marker file makes it happen once in the whole run."""

    def __init__(self, inner: Step1Factory, marker: Path) -> None:
        self.inner = inner
        self.marker = marker

    def build(self, rank):
        stage = self.inner.build(rank)
        if rank is None:
            return stage
        encode, marker = stage.encode, self.marker

        def encode_then_die(decoded):
            record = encode(decoded)
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return record
            os.write(fd, f"{os.getpid()} {decoded.item.name}".encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
            return record

        stage.encode = encode_then_die
        return stage


def test_worker_killed_while_encoding_redoes_its_sample_once(outputs, tmp_path, dataset, wan_release):
    out = tmp_path / "killed"
    out.mkdir()
    run, frames, models = settings(dataset, wan_release, out, "ray")
    samples, problems = read_input(run)
    items = plan_items(samples, problems, out)
    marker = tmp_path / "killed-once"
    summary = RayEngine(run.engine).run(KillWhileEncoding(Step1Factory(run, frames, models), marker), items, out,
                                        ExecutionSettings.of(run))
    pid, name = marker.read_text().split()
    assert int(pid) != os.getpid() and (out / f"{name}.pkl").exists()  # the killed sample was redone elsewhere
    assert summary["by_status"]["done"] == 4
    listed = (sidecar_of(out) / "vae_features.txt").read_text().splitlines()
    assert len(listed) == len(set(listed)) == 4
    assert_same_folder(outputs / "local" / "vae", out, "vae_features.txt", 4)


def test_status_of_a_ray_folder(outputs):
    """`revise-prep status` reads a Ray run's folder as a local one's: the driver is rank 0 of 1."""
    from revise_prep.records.status import folder_status

    for step in ("vae", "run"):
        st = folder_status(outputs / "ray" / step)
        summary = json.loads((Path(st["reports"]) / "summary.json").read_text())
        assert st["state"] == "finished" and st["engine"] == "ray" and st["world_size"] == 1, step
        assert {k: v for k, v in st["counts"].items() if v} == summary["by_status"], step
        assert st["reasons"] == summary["reasons_by_status"], step


class Poisoned:
    """A step-1 stage whose ``decode`` / ``encode`` of some samples (by input index) first does something to its
    own process: "stop" (SIGSTOP: a decoder hung inside C code), "kill" (SIGKILL), or "kill-holder" (SIGKILL the
    process the decode child belongs to: the Ray task's own worker, as the OOM killer would)."""

    def __init__(self, stage, on_decode: dict[int, str], on_encode: dict[int, str]) -> None:
        self.stage, self.on_decode, self.on_encode = stage, on_decode, on_encode
        self.step, self.list_name, self.records_only = stage.step, stage.list_name, stage.records_only

    def signature(self):
        return self.stage.signature()

    def prepare(self, todo):
        self.stage.prepare(todo)

    def describe(self, item):
        return self.stage.describe(item)

    def decode(self, item):
        strike(self.on_decode.get(item.index))
        return self.stage.decode(item)

    def encode(self, decoded):
        strike(self.on_encode.get(decoded.item.index))
        return self.stage.encode(decoded)


def strike(action: str | None) -> None:
    if action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "kill-holder":
        holder = os.getppid()
        if b"raylet" not in Path(f"/proc/{holder}/cmdline").read_bytes():  # never the node itself
            os.kill(holder, signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonFactory:
    def __init__(self, inner: Step1Factory, on_decode=None, on_encode=None, no_models: bool = False) -> None:
        self.inner, self.on_decode, self.on_encode, self.no_models = inner, on_decode or {}, on_encode or {}, no_models

    def build(self, rank, loaded=None):
        if rank is not None and self.no_models:
            raise AssertionError("a model was loaded")
        return Poisoned(self.inner.build(rank, loaded), self.on_decode, self.on_encode)


def run_ray(factory, run: RunSettings, out: Path, deadline: float = 300, **execution):
    """The Ray engine on ``run``'s input; fails the test when the run does not end by itself within ``deadline``."""
    samples, problems = read_input(run)
    items = plan_items(samples, problems, out)
    result: dict = {}

    def target():
        try:
            result["summary"] = RayEngine(run.engine).run(factory, items, out,
                                                          ExecutionSettings.of(run, **execution))
        except BaseException as err:  # noqa: BLE001 - re-raised in the test
            result["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(deadline)
    assert not thread.is_alive(), f"the Ray run did not end by itself within {deadline:g} s"
    if "error" in result:
        raise result["error"]
    return result["summary"]


def failures_by_index(out: Path) -> dict[int, dict]:
    lines = (sidecar_of(out) / "failures.jsonl").read_text().splitlines()
    return {f["index"]: f for f in map(json.loads, lines)}


def listed_names(out: Path) -> list[str]:
    return [Path(p).name for p in (sidecar_of(out) / "vae_features.txt").read_text().splitlines()]


GOOD = (0, 1, 5, 9)  # the dataset's samples that make a record


def test_a_hung_or_dead_decoder_costs_only_its_sample(outputs, tmp_path, dataset, wan_release):
    """Sample 1's decoder stops itself (SIGSTOP) and sample 5's kills itself, every time: with --decode-timeout 6
    sample 1 is decode_timeout and sample 5 decoder_crashed (retried once in a fresh process), the run ends by
    itself and every other sample is done once, as the local engine would."""
    out = tmp_path / "out"
    run, frames, models = settings(dataset, wan_release, out, "ray")
    factory = PoisonFactory(Step1Factory(run, frames, models), on_decode={1: "stop", 5: "kill"})
    summary = run_ray(factory, run, out, decode_timeout=6)
    failures = failures_by_index(out)
    assert failures[1]["reason"] == "decode_timeout" and "longer than 6 s" in failures[1]["message"]
    assert failures[5]["reason"] == "decoder_crashed" and "SIGKILL" in failures[5]["message"]
    reference = failures_by_index(outputs / "local" / "vae")
    assert {i: f["reason"] for i, f in failures.items() if i not in (1, 5)} == \
        {i: f["reason"] for i, f in reference.items()}
    names = listed_names(outputs / "local" / "vae")
    assert listed_names(out) == [n for i, n in zip(GOOD, names) if i not in (1, 5)]
    assert summary["by_status"]["done"] == 2
    assert summary["reliability"]["decode_timeouts"] == 1 and summary["reliability"]["worker_crashes"] == 2
    assert summary["reliability"]["retried"] == 1


def test_poison_samples_are_quarantined_and_stay_so_on_the_local_engine(outputs, tmp_path, dataset, wan_release):
    """Sample 1 kills the Ray task process that decodes it and sample 5 the encoder actor that encodes it, every
    time: each is failed as crashed_repeatedly after two deaths (not retried without end), every other sample
    is done once and the run ends; the local engine then resumes the folder with both still quarantined."""
    out = tmp_path / "out"
    run, frames, models = settings(dataset, wan_release, out, "ray")
    factory = PoisonFactory(Step1Factory(run, frames, models), on_decode={1: "kill-holder"}, on_encode={5: "kill"})
    summary = run_ray(factory, run, out, deadline=400)
    failures = failures_by_index(out)
    for i in (1, 5):
        assert failures[i]["reason"] == "crashed_repeatedly", failures[i]
        assert "died 2 times (2 in this run)" in failures[i]["message"]
    names = listed_names(outputs / "local" / "vae")
    assert listed_names(out) == [n for i, n in zip(GOOD, names) if i not in (1, 5)]
    assert summary["reliability"]["quarantined"] == 2 and summary["reliability"]["ray_process_deaths"] == 4
    meta = sidecar_of(out)
    assert not [p for p in (meta / ".inflight").iterdir() if p.is_dir()]  # the run's markers are gone
    journal = InflightJournal(meta, 0, 2)  # what a later run of two local ranks reads
    assert {n for n in journal.deaths if journal.quarantined(n)} == {names[1].removesuffix(".pkl"),
                                                                     names[2].removesuffix(".pkl")}
    journal.close()

    local, _, _ = settings(dataset, wan_release, out, "local")
    summary = run_step1(local, frames, models)
    failures = failures_by_index(out)
    assert [failures[i]["reason"] for i in (1, 5)] == ["crashed_repeatedly"] * 2
    assert all("not tried again" in failures[i]["message"] for i in (1, 5))
    assert summary["by_status"]["resumed"] == 2 and "done" not in summary["by_status"]
    summary = run_step1(dataclasses.replace(local, retry_crashed=True), frames, models)
    assert summary["by_status"]["done"] == 2  # --retry-crashed: the two are fine without the poison


def test_ray_keeps_a_local_quarantine_and_loads_no_model_to_plan(outputs, tmp_path, dataset, wan_release):
    """The good pairs, done by the local engine, but for sample 1 in flight when two of its runs died: Ray fails
    it as crashed_repeatedly without trying it, resumes the rest, and (nothing being left to do) never loads a
    model, neither for the resume signature nor anywhere else."""
    pairs = json.loads((dataset / "pairs.json").read_text())
    (tmp_path / "good.json").write_text(json.dumps([pairs[i] for i in GOOD]))
    out = tmp_path / "out"
    run, frames, models = settings(dataset, wan_release, out)
    run = dataclasses.replace(run, input=str(tmp_path / "good.json"))
    assert run_step1(run, frames, models)["by_status"] == {"done": 4}
    name = listed_names(out)[1].removesuffix(".pkl")
    (out / f"{name}.pkl").unlink()
    for _ in range(2):  # what two SIGKILLed local runs leave in the journal while holding the sample
        journal = InflightJournal(sidecar_of(out), 0, 1)
        journal.start(name)
        journal._file.close()
    run = dataclasses.replace(run, engine=EngineSettings(name="ray"))
    summary = run_ray(PoisonFactory(Step1Factory(run, frames, models), no_models=True), run, out, deadline=120)
    failures = failures_by_index(out)
    assert failures[1]["reason"] == "crashed_repeatedly" and "--retry-crashed" in failures[1]["message"]
    assert summary["by_status"] == {"resumed": 3, "failed": 1}
    assert not (out / f"{name}.pkl").exists()


def test_ray_data_keeps_its_info_lines_and_our_progress_notice_off_the_console():
    """A batch job's log gets Ray Data's warnings, not its per-dataset INFO lines (plan, start, finish: they stay in
    Ray's session log) nor its notice that the progress bars this engine turns off are off."""
    import io
    import logging

    from revise_prep.pipeline.engines.ray import not_progress_notice, quiet_ray_data, ray_console_handlers

    [console] = ray_console_handlers()
    executor = logging.getLogger("ray.data._internal.execution.streaming_executor")
    level, old = console.level, console.setStream(io.StringIO())
    console.setLevel(logging.INFO)  # as Ray ships it (an earlier run in this process has quieted it)
    console.removeFilter(not_progress_notice)
    try:
        executor.info("Starting execution of Dataset one")
        assert "Dataset one" in console.stream.getvalue()
        quiet_ray_data()
        quiet_ray_data()  # idempotent
        executor.info("Starting execution of Dataset two")
        logging.getLogger("ray.data._internal.progress").warning("Progress bars disabled. To enable, set ...")
        executor.warning("a real problem")
        err = console.stream.getvalue()
        assert console.filters.count(not_progress_notice) == 1
    finally:
        console.setStream(old)
        console.setLevel(level)
    assert "Dataset two" not in err and "Progress bars" not in err
    assert err.count("a real problem") == 1

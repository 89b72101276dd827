"""Two Ray nodes on one machine (``ray start --head`` + ``ray start --address``): the second node's raylet is
killed by the first piece of work that runs there; the run completes on the head, every sample once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray", reason="the Ray engine needs the [ray] extra (pip install 'revise-prep[ray]')")
pytest.importorskip("ray.data", reason="the Ray engine needs Ray Data (pip install 'revise-prep[ray]')")

from .test_engine_ray import assert_same_folder  # noqa: E402
from revise_prep.records.layout import sidecar_of  # noqa: E402

RAY_CLI = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]
SECOND = "REVISE_PREP_TEST_NODE"

# The driver: joins the two-node cluster, wraps step 1's stage so that the first decode or encode that runs on
# the second node kills that node's raylet (and itself), and runs the Ray engine. Defined in __main__, so Ray
# ships the wrapper by value.
DRIVER = r'''
import json, os, signal, sys, time
from pathlib import Path
import ray
from revise_prep.pipeline.engines.ray import RayEngine
from revise_prep.pipeline.step1 import Step1Factory, plan_items, read_input
from revise_prep.settings import EngineSettings, ExecutionSettings, FrameSettings, ModelSettings, RunSettings

address, data, wan, out, marker = sys.argv[1:6]

def raylet_pid():
    pid = os.getpid()
    while pid > 1:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        pid = int(fields[1])
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() == "raylet":
                return pid
    raise RuntimeError("no raylet above this worker")

def strike():
    if os.environ.get("REVISE_PREP_TEST_NODE") != "second":
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(raylet_pid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)

class Strike:
    def __init__(self, stage):
        self.stage, self.step, self.list_name = stage, stage.step, stage.list_name
        self.records_only = stage.records_only  # the layout: reports in the step-1 folder's sidecar
    def signature(self):
        return self.stage.signature()
    def prepare(self, todo):
        self.stage.prepare(todo)
    def describe(self, item):
        return self.stage.describe(item)
    def decode(self, item):
        strike()
        return self.stage.decode(item)
    def encode(self, decoded):
        strike()
        return self.stage.encode(decoded)

class Factory:
    def __init__(self, inner):
        self.inner = inner
    def build(self, rank):
        return Strike(self.inner.build(rank))

ray.init(address=address, logging_level="WARNING", configure_logging=False)
deadline = time.time() + 120
while sum(n["Alive"] for n in ray.nodes()) < 2:
    assert time.time() < deadline, "the second node never joined"
    time.sleep(0.5)
run = RunSettings(input=str(Path(data) / "pairs.json"), output_dir=out, video_root=data, num_workers=0,
                  progress=False, engine=EngineSettings(name="ray", actors=2))
frames = FrameSettings(frame_num=5, interval=2, height=32, width=48)
models = ModelSettings(ckpt_dir=wan, vae_dtype="float32", t5_dtype="float32", text_len=32, device="cpu")
samples, problems = read_input(run)
items = plan_items(samples, problems, Path(out))
summary = RayEngine(run.engine).run(Factory(Step1Factory(run, frames, models)), items, Path(out),
                                   ExecutionSettings.of(run))
print("SUMMARY " + json.dumps(summary))
'''


TOKEN = os.urandom(16).hex()
# the head declares a silent node dead after ~3 s instead of ~30 s (the run waits for that to reschedule)
HEALTH_CHECKS = '--system-config={"health_check_period_ms": 1000, "health_check_failure_threshold": 3}'


def cluster_env() -> dict[str, str]:
    """Token authentication with a token of this test's own (nothing read from or written to ~/.ray)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def two_nodes(tmp_path):
    """A head (3 CPUs) and a second node (2 CPUs, env marks it), each a blocking ``ray start`` we stop ourselves."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1", "--object-store-memory=268435456"]
    log = tmp_path / "ray-nodes.log"
    with open(log, "w") as sink:
        head = subprocess.Popen([*RAY_CLI, "start", "--head", f"--port={port}", "--num-cpus=3",
                                 "--include-dashboard=false", HEALTH_CHECKS, *common], env=cluster_env(),
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        procs = [head]
        try:
            time.sleep(3)
            second = subprocess.Popen([*RAY_CLI, "start", f"--address={address}", "--num-cpus=2", *common],
                                      stdout=sink, stderr=subprocess.STDOUT, env={**cluster_env(), SECOND: "second"},
                                      start_new_session=True)
            procs.append(second)
            yield address
        finally:
            for proc in reversed(procs):  # each node's processes share its `ray start`'s process group
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # SIGTERM would drain for 30 s first
                except ProcessLookupError:
                    pass
                proc.wait()


@pytest.mark.slow
def test_second_node_lost_mid_run(two_nodes, tmp_path, dataset, wan_release, tmp_path_factory):
    out = tmp_path / "out"
    marker = tmp_path / "struck"
    proc = subprocess.run([sys.executable, "-c", DRIVER, two_nodes, str(dataset), str(wan_release), str(out),
                           str(marker)], capture_output=True, text=True, timeout=540,
                          env=cluster_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert marker.exists(), "nothing ran on the second node"  # its raylet was killed by its first work
    assert "SUMMARY " in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads(proc.stdout.split("SUMMARY ", 1)[1].splitlines()[0])
    assert summary["by_status"]["done"] == 4
    listed = (sidecar_of(out) / "vae_features.txt").read_text().splitlines()
    assert len(listed) == len(set(listed)) == 4
    # the same records as the local engine, made here without Ray, in this test
    local = tmp_path / "local"
    from revise_prep.cli import main

    assert main(["vae", "--input", str(dataset / "pairs.json"), "--video-root", str(dataset), "--ckpt-dir",
                 str(wan_release), "--vae-dtype", "float32", "--t5-dtype", "float32", "--text-len", "32",
                 "--device", "cpu", "--frame-num", "5", "--sampling-rate", "2", "--target-size", "32,48",
                 "--num-workers", "0", "--no-progress", "--output-dir", str(local)]) == 4  # 4: some samples fail
    assert_same_folder(local, out, "vae_features.txt", 4)

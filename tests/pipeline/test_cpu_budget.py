"""The CPU budget: a rank's share of the node's CPUs, split over its decode workers with a core for the main
process; the ranks on a node from torchrun/SLURM variables; the flag and the main process's torch pool."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revise_prep.pipeline.engines.local.cpu_budget import CpuBudget, budget_for, cpu_budget, rank_share
from revise_prep.pipeline.dist import rank_info, slurm_tasks_on_node


@pytest.mark.parametrize(("affinity", "machine", "local_world", "expected"), [
    (16, 16, 1, 16),   # one rank: every CPU it may run on
    (16, 16, 8, 2),    # torchrun, 8 ranks seeing the whole node: 2 each
    (64, 64, 8, 8),
    (16, 64, 8, 2),    # a 16-CPU allocation on a 64-CPU node, 8 unbound ranks
    (8, 64, 8, 8),     # srun binding each of 8 ranks to its own 8 CPUs: the mask is the share already
    (2, 16, 8, 2),
    (4, 16, 8, 1),     # 4 CPUs seen by 8 ranks: at least one each
    (3, 4, 1, 3),      # taskset: the mask, not the machine
])
def test_rank_share(affinity, machine, local_world, expected):
    assert rank_share(affinity, machine, local_world) == expected


def test_issue_example_16_cores_4_workers():
    """One H200 box of the issue: 16 cores, 4 workers used 32 decoder threads plus torch's full pool."""
    b = cpu_budget(16, 4, encode_on_cpu=False, torch_default=16)
    assert b == CpuBudget(share=16, decoder_threads=3, main_threads=1)
    assert 4 * b.decoder_threads + b.main_threads <= 16
    eight = cpu_budget(rank_share(16, 16, 8), 2, encode_on_cpu=False, torch_default=16)  # 8 GPUs on 16 cores
    assert eight.decoder_threads == 1 and eight.main_threads == 1


def test_cpu_encoding_keeps_torch_threads_within_share():
    assert cpu_budget(2, 2, encode_on_cpu=True, torch_default=2).main_threads == 2  # this machine: as before
    assert cpu_budget(16, 4, encode_on_cpu=True, torch_default=8).main_threads == 8  # never above torch's own
    assert cpu_budget(4, 2, encode_on_cpu=True, torch_default=8).main_threads == 4  # never above the share
    assert cpu_budget(8, 0, encode_on_cpu=False, torch_default=8).decoder_threads == 8  # inline decoding


@given(st.integers(1, 512), st.integers(0, 64), st.booleans(), st.integers(1, 256))
def test_budget_never_oversubscribes_a_gpu_rank(share, workers, on_cpu, default):
    b = cpu_budget(share, workers, encode_on_cpu=on_cpu, torch_default=default)
    assert b.decoder_threads >= 1 and 1 <= b.main_threads <= share
    if workers and not on_cpu and share > workers:
        assert workers * b.decoder_threads + b.main_threads <= share


def test_override_is_the_share():
    assert budget_for(3, 1, encode_on_cpu=False, override=13).decoder_threads == 4
    assert budget_for(3, 8, encode_on_cpu=False, override=13).share == 13  # the flag is this rank's share


def test_local_world_size_from_launchers():
    assert rank_info({}).local_world_size == 1
    env = {"RANK": "3", "WORLD_SIZE": "16", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "8"}
    assert rank_info(env).local_world_size == 8
    assert rank_info({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
                      "SLURM_NTASKS_PER_NODE": "4"}).local_world_size == 4
    assert slurm_tasks_on_node({"SLURM_TASKS_PER_NODE": "2(x3),1", "SLURM_NODEID": "3"}) == 1
    assert slurm_tasks_on_node({"SLURM_TASKS_PER_NODE": "2(x3),1", "SLURM_NODEID": "2"}) == 2
    assert slurm_tasks_on_node({"SLURM_TASKS_PER_NODE": "8"}) == 8
    assert slurm_tasks_on_node({"SLURM_TASKS_PER_NODE": "garbage"}) == 1
    assert slurm_tasks_on_node({}) == 1


def test_flag_reaches_settings():
    from revise_prep.cli import build_parser
    from revise_prep.cli.options import run_settings

    parser = build_parser()
    args = parser.parse_args(["vae", "--input", "x", "--output-dir", "o", "--cpu-threads", "6"])
    assert run_settings(args).cpu_threads == 6
    assert run_settings(parser.parse_args(["vae", "--input", "x", "--output-dir", "o"])).cpu_threads is None


def test_the_local_engine_gives_stages_the_budget():
    from types import SimpleNamespace

    import torch

    from revise_prep.pipeline.dist import RankInfo
    from revise_prep.pipeline.engines.local.cpu_budget import stage_budget
    from revise_prep.settings import ExecutionSettings

    gpu = SimpleNamespace(encode_devices=[torch.device("cuda", 0)])
    b = stage_budget(gpu, ExecutionSettings(num_workers=2, cpu_threads=7), RankInfo())
    assert (b.decoder_threads, b.main_threads) == (3, 1)  # (7 - 1) // 2; a GPU rank's main process: 1 thread
    b = stage_budget(gpu, ExecutionSettings(num_workers=4), RankInfo(0, 8, 0, 8))
    assert b.decoder_threads == 1
    cpu = SimpleNamespace(encode_devices=[torch.device("cuda", 0), torch.device("cpu")])  # --t5-cpu
    assert stage_budget(cpu, ExecutionSettings(num_workers=2, cpu_threads=2), RankInfo()).main_threads == 2
    assert stage_budget(object(), ExecutionSettings(num_workers=2, cpu_threads=2), RankInfo()).main_threads == 2

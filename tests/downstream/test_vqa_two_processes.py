"""Two CPU processes (accelerate with gloo) train and evaluate as one process does on the same
data and global batch: the same accuracies, the same weights up to float rounding."""

import json
import os
import signal
import socket
import subprocess
import sys

import torch
from safetensors.torch import load_file

from downstream.reasoner import ReasonerConfig, ReasonerModel
from downstream.vqa import REPOSITORY, VqaConfig, run_vqa
from ocl.config_loading import load_config

TINY = REPOSITORY / "configs" / "vqa" / "tiny.yaml"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_cpu_processes_match_one(vqa_files, tmp_path):
    overrides = [
        f"data.clevrer_root={vqa_files.clevrer.root}", f"data.slots={vqa_files.slots}",
        f"data.cache_dir={vqa_files.cache}", "data.submission_split=test",
    ]
    one = run_vqa(load_config(VqaConfig, TINY,
                              [*overrides, f"training.output_dir={tmp_path / 'one'}"]))

    # `--cpu --num_processes 2` would run ONE process; this is the command that runs two
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
        "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), str(REPOSITORY / "downstream" / "vqa.py"),
        "--config", str(TINY), *overrides, f"training.output_dir={tmp_path / 'two'}",
    ]
    environment = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    # a session of its own, so that a hang kills the launcher's worker processes too
    launcher = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = launcher.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        stdout, stderr = launcher.communicate()
    assert launcher.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert "processes: 2," in stdout

    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two == one  # accuracies are counts over the same questions: exactly equal
    # the weights went the same way: they differ by float rounding (which Adam amplifies for
    # gradients near its epsilon), far less than training moved them; another sample order or
    # learning rate at any step would differ by a good share of it (measured: ~30%)
    torch.manual_seed(0)
    initial = ReasonerModel(ReasonerConfig.from_pretrained(tmp_path / "one" / "model"))
    weights = [load_file(tmp_path / run / "model" / "model.safetensors") for run in ("one", "two")]
    moved = sum((value - initial.state_dict()[key]).abs().sum() for key, value in
                weights[0].items())
    apart = sum((value - weights[1][key]).abs().sum() for key, value in weights[0].items())
    assert apart < 1e-3 * moved
    submissions = [json.loads((tmp_path / run / "submission.json").read_text())
                   for run in ("one", "two")]
    assert submissions[0] == submissions[1]


"""The real ``tracejit dump`` command in subprocesses (run concurrently: each start pays
for importing torch). Bad input: exit 2, one line on stderr, no traceback, no file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import ir
from ir.verify import verify

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("tracejit")

BAD_MODELS = '''
import torch
from torch import nn

class NeedsArgs(nn.Module):
    def __init__(self, width):
        super().__init__()

class Raises(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom in forward")

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return torch.relu(self.fc(x))
'''

GOOD = {
    "text": ["examples/models.py:LeNet", "--input", "1x1x28x28"],
    "json": ["examples.models:SimpleNN", "--input", "2x784", "--format", "json",  # package form
             "-o", "{tmp}/simple.json"],
    "dot": ["examples/models.py:GRUClassifier", "--input", "2x5:int64", "--format", "dot",
            "--passes", "none"],
    "each": ["tests/models_zoo.py:mlp", "--input", "3x10", "--passes", "each"],
}

# name -> (arguments, words the one stderr line must contain)
BAD = {
    "missing-file": (["{tmp}/nope.py:Net", "--input", "1x4"], ["nope.py", "does not exist"]),
    "missing-class": (["{tmp}/bad.py:Missing", "--input", "1x4"], ["no attribute 'Missing'"]),
    "needs-args": (["{tmp}/bad.py:NeedsArgs", "--input", "1x4"], ["constructor arguments"]),
    "bad-shape": (["{tmp}/bad.py:Tiny", "--input", "1xq4"], ["bad --input '1xq4'"]),
    "raises": (["{tmp}/bad.py:Raises", "--input", "1x4"], ["RuntimeError", "boom in forward"]),
    "no-folder": (["{tmp}/bad.py:Tiny", "--input", "1x4", "-o", "{tmp}/nodir/out.txt"],
                  ["nodir", "does not exist"]),
}


def _run(argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every command of this module, started together; name -> (CompletedProcess, tmp)."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "bad.py").write_text(BAD_MODELS)
    cmd = [sys.executable, "-m", "tracejit", "dump"]
    jobs = {f"good-{k}": cmd + [a.format(tmp=tmp) for a in v] for k, v in GOOD.items()}
    if SCRIPT.exists():                     # the console script runs the text dump
        jobs["good-text"] = [str(SCRIPT), "dump"] + GOOD["text"]
    for name, (args, _) in BAD.items():
        out = "{tmp}/out.txt" if "-o" not in args else None
        jobs[f"bad-{name}"] = cmd + [a.format(tmp=tmp) for a in args] + (
            ["-o", out.format(tmp=tmp)] if out else [])
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(jobs, pool.map(_run, jobs.values())))
    return done, tmp


def _ok(proc):
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_dump_text_is_the_optimised_graph(runs):
    text = _ok(runs[0]["good-text"])
    assert text.startswith("graph LeNet(%x: f32[1,1,28,28], %conv1.weight: f32[6,1,5,5] param")
    assert "fused[kind=\"epilogue\"]" in text and "max_pool2d" in text
    graph = ir.parse(text)
    verify(graph)
    assert ir.print_graph(graph) + "\n" == text


def test_dump_json_to_file(runs):
    proc = runs[0]["good-json"]
    assert _ok(proc) == "" and proc.stderr == ""
    graph = ir.from_json(json.loads((runs[1] / "simple.json").read_text()))
    verify(graph)
    assert [i.name for i in graph.inputs] == ["x", "fc1.weight", "fc1.bias", "fc2.weight",
                                              "fc2.bias"]
    assert not [p.name for p in runs[1].iterdir() if p.name.endswith(".tmp")]


def test_dump_dot_of_the_raw_trace(runs):
    text = _ok(runs[0]["good-dot"])
    assert text.lstrip().startswith("digraph")
    assert "embedding" in text and "fused" not in text


def test_dump_each_pass_under_a_header(runs):
    text = _ok(runs[0]["good-each"])
    headers = [line for line in text.splitlines() if line.startswith("// after: ")]
    assert headers[0] == "// after: trace (raw)"
    names = {h.removeprefix("// after: ") for h in headers}
    assert {"dce", "cse", "fold", "simplify", "fuse"} <= names
    last = text.rsplit("// after: ", 1)[1].split("\n", 1)[1]
    verify(ir.parse(last))


def test_console_script_is_installed(runs):
    if not SCRIPT.exists():
        pytest.skip(f"console script {SCRIPT} is not installed (pip install -e .)")
    assert runs[0]["good-text"].args[0] == str(SCRIPT)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_one_line_exit_2_no_file(runs, name):
    proc, tmp = runs[0][f"bad-{name}"], runs[1]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("tracejit dump: error: ")
    assert all(w in lines[0] for w in BAD[name][1]), lines[0]
    assert proc.stdout == ""
    assert not (tmp / "out.txt").exists()
    assert not [p.name for p in tmp.rglob("*") if p.name.startswith(".out")]

"""Notebook runs, the pure parts: parameters, the papermill command, submit validation
(the spawn form's checks), a run's JSON and how a finished run is judged."""

from __future__ import annotations

import base64
import json

import nbformat
import pytest

from gridspawner.catalog import build_catalog
from gridspawner.runs import outcome, params
from gridspawner.runs.papermill_cmd import INPUT, OUTPUT, PARAMETERS, batch_job
from gridspawner.runs.submit import build_draft
from gridspawner.runs.view import positions, run_json
from gridspawner.vocabulary import OptionsError


def notebook(params_source: str = "alpha = 0.5\nepochs = 3\nname = 'x'\nflag = False\nitems = [1, 2]",
             body: str = "print(alpha)") -> bytes:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params_source)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb).encode()


def local_catalog(storage=None):
    return build_catalog(backends={"here": {"kind": "local"}}, images={"base": {"local": {}}}, max_gpus=2,
                         gpu_memory_classes=[16, 80], default_options={"backend": "here", "image": "base"},
                         default_policy={"backends": ["here"], "images": ["base"], "max_gpus": 1}, storage=storage)


def test_parameters_cell_types_and_defaults():
    cell = params.declared(params.parameters_cell(params.read_notebook(notebook())))
    assert {k: v.type for k, v in cell.items()} == {"alpha": "float", "epochs": "int", "name": "str",
                                                    "flag": "bool", "items": "list"}
    values, errors, warnings = params.check_parameters({"alpha": 1, "epochs": 5, "flag": True, "other": "z"}, cell)
    assert values == {"alpha": 1.0, "epochs": 5, "flag": True, "other": "z"} and errors == {}
    assert len(warnings) == 1 and "'other'" in warnings[0]


def test_parameter_errors_name_each_parameter():
    cell = params.declared(params.parameters_cell(params.read_notebook(notebook())))
    _, errors, _ = params.check_parameters({"epochs": "5", "alpha": float("inf"), "items": [[1]], "1x": 1,
                                            "flag": 1, "name": {"a": 1}}, cell)
    assert set(errors) == {"parameters.epochs", "parameters.alpha", "parameters.items", "parameters.1x",
                           "parameters.flag", "parameters.name"}
    assert "type int" in errors["parameters.epochs"]


def test_not_a_notebook():
    with pytest.raises(params.NotebookError):
        params.read_notebook(b"{not json")
    with pytest.raises(params.NotebookError):
        params.read_notebook(b"\xff\xfe")


def test_papermill_job_never_formats_values_into_argv():
    job = batch_job("abc123def456", notebook(), {"name": "x; rm -rf / $(id)"})
    assert job.argv[:3] == ("papermill", INPUT, OUTPUT) and PARAMETERS in job.argv
    assert all("rm -rf" not in a for a in job.argv)
    assert json.loads(job.files[PARAMETERS]) == {"name": "x; rm -rf / $(id)"}
    assert job.outputs == (OUTPUT,)


def test_draft_collects_every_field_error_and_uses_the_spawn_checks():
    with pytest.raises(OptionsError) as e:
        build_draft({"notebook": b"nope", "options": json.dumps({"gpus": 9, "image": "nope"}),
                     "parameters": "{bad", "bindings": json.dumps({"p": 0}), "name": "a\nb"},
                    local_catalog(), [], "alice")
    assert {"notebook", "gpus", "image", "parameters", "bindings.p", "name"} <= set(e.value.errors)


def test_draft_ok_with_base64_notebook_and_warnings():
    d = build_draft({"notebook": base64.b64encode(notebook()).decode(), "options": {"gpus": 0},
                     "parameters": {"epochs": 2, "extra": 1}, "name": "trial"}, local_catalog(), [], "alice")
    assert d.request.backend == "here" and d.parameters == {"epochs": 2, "extra": 1} and d.name == "trial"
    assert d.warnings and "'extra'" in d.warnings[0]


def test_bindings_give_the_mount_path():
    storage = {"ssh": {"lab": {"address": "lab.example", "known_hosts": "/kh", "paths": ["/data/*"],
                               "auth": ["password"]}}}
    row = {"type": "ssh", "path": "/data/alice", "target": "inputs", "mode": "copy", "password": "pw"}
    d = build_draft({"notebook": notebook(), "options": {"mounts": [row]},
                     "bindings": {"alpha": {"mount": 0, "path": "sub/file.csv"}, "items": 0}},
                    local_catalog(storage), [], "alice")
    assert d.parameters == {"alpha": "data/inputs/sub/file.csv", "items": "data/inputs"}
    with pytest.raises(OptionsError) as e:
        build_draft({"notebook": notebook(), "options": {"mounts": [row]}, "parameters": {"alpha": 1.0},
                     "bindings": {"alpha": {"mount": 0, "path": "../etc"}, "items": {"mount": 3}}},
                    local_catalog(storage), [], "alice")
    assert set(e.value.errors) == {"bindings.alpha", "bindings.items"}


def executed(error_in: int | None) -> bytes:
    nb = json.loads(notebook())
    injected = {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "", "outputs": [],
                "execution_count": 1}
    nb["cells"].insert(2, injected)
    if error_in is not None:
        nb["cells"][3]["metadata"]["papermill"] = {"exception": True}
        nb["cells"][3]["outputs"] = [{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero",
                                      "traceback": []}]
    return json.dumps(nb).encode()


def test_judging_a_finished_run():
    assert outcome.judge(0, executed(None), "", "base") == ("succeeded", None)
    status, err = outcome.judge(1, executed(2), "log", "base")
    assert status == "failed" and err["cell_index"] == 2 and err["ename"] == "ZeroDivisionError"
    status, err = outcome.judge(127, None, "papermill: not found", "base")
    assert "papermill and ipykernel" in err["message"] and "'base'" in err["message"]
    assert outcome.judge(None, None, "", "b", cancelled=True) == ("cancelled", None)
    assert outcome.judge(None, None, "", "b", timed_out=True)[0] == "timed_out"


def test_run_json_and_queue_positions():
    rows = [{"id": "a", "backend": "x"}, {"id": "b", "backend": "y"}, {"id": "c", "backend": "x"}]
    assert positions(rows) == {"a": 1, "b": 1, "c": 2}
    row = {"id": "r1", "username": "u", "status": "running", "submitted_at": 0.0, "started_at": 100.0,
           "finished_at": None, "backend": "x", "gpus": 2, "gpu_model": "A100", "gpu_memory_gb": 80,
           "parameters": '{"a": 1}', "updated_at": 1.0}
    j = run_json(row, 100.0 + 1800)
    assert j["duration"] == 1800 and j["gpu_hours"] == 1.0 and j["gpus"] == {"count": 2, "model": "A100", "vram": 80}
    assert j["queue_position"] is None and j["parameters"] == {"a": 1}

"""nh.save / nh.load error paths (round trips live with each model's tests)."""

import json

import jax
import pytest

import numpyro_hgf as nh


def test_loading_a_non_model_directory_names_path(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match=r"path: expected a directory written by numpyro_hgf.save"):
        nh.load(tmp_path)
    with pytest.raises(ValueError, match="path: expected a directory"):
        nh.load(tmp_path / "missing")


@pytest.fixture()
def saved_flow(tmp_path):
    flow = nh.flows.build_flow("realnvp", 2, num_layers=1, hidden=(4,), key=jax.random.key(0))
    return nh.save(tmp_path / "flow", flow)


def _edit_metadata(path, **changes):
    meta = json.loads((path / "model.json").read_text())
    meta.update(changes)
    (path / "model.json").write_text(json.dumps(meta))


def test_incompatible_format_version_is_a_clear_error(saved_flow):
    _edit_metadata(saved_flow, format_version=99)
    with pytest.raises(ValueError, match="expected model format version 1, got 99"):
        nh.load(saved_flow)


def test_unknown_kind_and_mismatched_params_are_errors(saved_flow):
    meta = json.loads((saved_flow / "model.json").read_text())
    _edit_metadata(saved_flow, kind="time_machine")
    with pytest.raises(ValueError, match="unknown model kind 'time_machine'"):
        nh.load(saved_flow)
    meta["config"]["hidden"] = [5]
    (saved_flow / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not fit the saved config"):
        nh.load(saved_flow)


def test_saving_a_non_model_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="model: expected a saveable numpyro_hgf model"):
        nh.save(tmp_path / "x", {"params": 1})


# -- atomic, verified saves (issue: a SIGKILL between the two files left a mixed model) -------
def _flow(seed):
    return nh.flows.build_flow("realnvp", 2, num_layers=1, hidden=(4,), key=jax.random.key(seed))


def _same_params(a, b) -> bool:
    import numpy as np

    return all(
        np.array_equal(x, y)
        for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True)
    )


def test_overwrite_needs_overwrite_true_and_replaces_whole(tmp_path):
    path = nh.save(tmp_path / "m", _flow(0))
    with pytest.raises(ValueError, match="already holds a saved model; pass overwrite=True"):
        nh.save(path, _flow(1))
    assert _same_params(nh.load(path), _flow(0))
    nh.save(path, _flow(1), overwrite=True)
    assert _same_params(nh.load(path), _flow(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging or backup left


def test_saving_onto_a_file_or_a_folder_of_other_files_names_path(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="path: expected a directory for the model, got the file"):
        nh.save(tmp_path / "file", _flow(0))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="path: .* is a directory holding other files"):
        nh.save(tmp_path / "run", _flow(0), overwrite=True)
    assert (tmp_path / "run" / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert _same_params(nh.load(nh.save(tmp_path / "empty", _flow(0))), _flow(0))


def test_a_flipped_byte_in_the_params_is_detected(saved_flow):
    raw = bytearray((saved_flow / "params.msgpack").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (saved_flow / "params.msgpack").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="does not match the checksum"):
        nh.load(saved_flow)


def test_params_of_another_model_with_the_same_shapes_are_detected(tmp_path):
    """Negative control for the atomic save: the mix a non-atomic save could leave (the new
    params beside the old config, same shapes) is refused, not loaded."""
    a = nh.save(tmp_path / "a", _flow(0))
    b = nh.save(tmp_path / "b", _flow(1))
    (a / "params.msgpack").write_bytes((b / "params.msgpack").read_bytes())
    with pytest.raises(ValueError, match="does not match the checksum"):
        nh.load(a)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"[1, 2, 3]", "does not describe a numpyro_hgf model"),
        (b"null", "does not describe a numpyro_hgf model"),
        (b"\xff\xfe\x00garbage", "is not UTF-8 text"),
        (b"{not json", "is not valid JSON"),
    ],
)
def test_edited_model_json_is_a_value_error_naming_path(saved_flow, content, needle):
    (saved_flow / "model.json").write_bytes(content)
    with pytest.raises(ValueError, match=f"^path: .*{needle}"):
        nh.load(saved_flow)


def test_missing_config_or_a_switched_kind_is_a_value_error(saved_flow):
    meta = json.loads((saved_flow / "model.json").read_text())
    _edit_metadata(saved_flow, config=None)
    with pytest.raises(ValueError, match="has no 'config' object"):
        nh.load(saved_flow)
    from numpyro_hgf import io

    others = [kind for kind in io._REGISTRY if kind != meta["kind"]]
    assert len(others) >= 5
    for kind in others:  # the flow's config under every other kind
        module = io._REGISTRY[kind].__module__
        (saved_flow / "model.json").write_text(json.dumps(dict(meta, kind=kind, module=module)))
        with pytest.raises(ValueError, match="^path: "):
            nh.load(saved_flow)


CHILD = """
import sys, time, os
import jax
import numpyro_hgf as nh
from numpyro_hgf import io

def flow(seed):
    return nh.flows.build_flow("realnvp", 2, num_layers=1, hidden=(4,), key=jax.random.key(seed))

write = io._write_synced
def slow_write(file, data):
    write(file, data)
    print("wrote", file.name, flush=True)
    time.sleep(60)  # the parent kills us here, between the two files
io._write_synced = slow_write
nh.save(sys.argv[1], flow(1), overwrite=True)
"""


def test_sigkill_between_the_two_files_leaves_the_old_model(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    path = nh.save(tmp_path / "model", _flow(0))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = child.stdout.readline()  # blocks until the params file is written
        assert line.startswith("wrote params.msgpack"), line
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert _same_params(nh.load(path), _flow(0))  # the old model, whole
    nh.save(path, _flow(1), overwrite=True)  # a later save still works (stale staging ignored)
    assert _same_params(nh.load(path), _flow(1))


def test_load_finishes_an_overwrite_stopped_between_the_renames(tmp_path):
    import os

    path = nh.save(tmp_path / "model", _flow(0))
    os.rename(path, tmp_path / ".model.previous")  # the state after the first rename
    assert _same_params(nh.load(path), _flow(0))
    assert path.is_dir() and not (tmp_path / ".model.previous").exists()

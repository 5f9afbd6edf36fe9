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

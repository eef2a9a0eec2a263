"""Errors: the exit status each kind gives, and the suggestion for a near miss."""

from __future__ import annotations

from nnlab.helpers.errors import NnlabError, RunError, TrainingStopped, did_you_mean


def test_exit_codes():
    assert NnlabError("x").exit_code == 2 and RunError("x").exit_code == 2
    assert TrainingStopped("x").exit_code == 1
    assert TrainingStopped("x", exit_code=130).exit_code == 130
    assert isinstance(RunError("x"), NnlabError)


def test_did_you_mean_suggests_the_closest_or_lists_the_choices():
    assert did_you_mean("vea", ["classifier", "vae"]) == " (did you mean 'vae'?)"
    listed = did_you_mean("zzz", ["classifier", "vae"])
    assert "classifier" in listed and "vae" in listed and "did you mean" not in listed


def test_a_run_id_typo_names_at_most_five_ids_or_where_to_see_them():
    from nnlab.helpers.errors import closest_ids

    ids = [f"vae-20260101-1200{i:02d}" for i in range(60)]
    assert closest_ids("lastest", ids, "nnlab summary") == " (did you mean 'latest'?)"
    hint = closest_ids("vae-20260101-120007x", ids, "nnlab summary")
    assert hint.startswith(" (did you mean 'vae-20260101-120007'") and hint.count("'") <= 10
    assert closest_ids("zzz", ids, "nnlab summary") == " (nnlab summary lists them)"

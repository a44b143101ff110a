"""Issue 11, the command's choices come from the library's registries and its checks from the
library: a model, a rule or a modality the library knows is accepted, whatever the command was
written for; a setting the library refuses exits 2 with the library's reason, naming the option.
"""

from __future__ import annotations

import pytest

import avrobust.attacks.rules
import avrobust.cli.argtypes
import avrobust.models.registry
from avrobust.cli import main


def _exit(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr().err


def test_model_choices_are_the_registered_models(monkeypatch, capsys) -> None:
    """A model registered with register_model is a --model and --surrogate-model choice."""
    monkeypatch.setitem(avrobust.models.registry._REGISTRY, "my_net", lambda **kw: None)
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--help"])
    assert info.value.code == 0
    usage = capsys.readouterr().out
    choices = "{my_net,nc_talknet,spec_talknet,talknet,tiny}"
    assert f"--model {choices}" in usage and f"--surrogate-model {choices}" in usage


def test_rule_choices_are_the_known_rules(monkeypatch, tmp_path, capsys) -> None:
    """A rule known to the attacks by name parses; the error lists the known rules."""
    monkeypatch.setitem(avrobust.attacks.rules._RULES, "mine", avrobust.attacks.rules.PGD)
    argv = ["evaluate", "--checkpoint", str(tmp_path / "none.model"), "--data", "synthetic"]
    code, err = _exit([*argv, "--rules", "MINE,pgd"], capsys)
    assert code == 2 and "--checkpoint: file not found" in err  # --rules was accepted
    code, err = _exit([*argv, "--rules", "cw"], capsys)
    assert (
        code == 2 and "--rules: expected names among fgsm,bim,mim,pgd,apgd,mine, got ['cw']" in err
    )


def test_modality_choices_come_from_the_budgets(monkeypatch, tmp_path, capsys) -> None:
    """The attacked sets are checked against the modalities the budgets cover, not against a
    fixed audio/visual list."""
    monkeypatch.setattr(avrobust.cli.argtypes, "modality_names", lambda: ["audio", "depth"])
    argv = ["evaluate", "--checkpoint", str(tmp_path / "none.model"), "--data", "synthetic"]
    code, err = _exit([*argv, "--modalities", "audio+depth,depth"], capsys)
    assert code == 2 and "--checkpoint: file not found" in err
    code, err = _exit([*argv, "--modalities", "visual"], capsys)
    assert code == 2 and "--modalities: expected audio, depth or audio+depth, got 'visual'" in err


def test_avil_choices_are_the_avil_terms(capsys) -> None:
    """--avil-single takes the AVIL terms of avrobust.losses (case-insensitive)."""
    code, err = _exit(["demo", "--avil-single", "l5"], capsys)
    assert code == 2
    assert "--avil-single: expected AVIL terms among l1,l2,l3,l4, got ['l5']" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--eps", "5,20", "--table-eps", "50"], "--table-eps: must be one of the eps grid"),
        (["--table-eps", "7"], "--table-eps: must be one of the eps grid ['5', '10', '20', '50']"),
    ],
)
def test_a_setting_the_demo_config_refuses_exits_2_naming_the_option(argv, message, capsys):
    """The demo's settings are checked by DemoConfig; the command reports its reason in one
    line with the option's name instead of the field's."""
    code, err = _exit(["demo", *argv], capsys)
    assert code == 2 and message in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1


def test_library_error_names_the_option() -> None:
    """The field name at the start of a library message becomes the option's name."""
    from avrobust.cli.demo import OPTION_OF, library_error

    assert library_error(ValueError("eps_grid[1]: bad"), OPTION_OF) == "--eps[1]: bad"
    assert (
        library_error(ValueError("seed: must be\n  an int"), OPTION_OF) == "--seed: must be an int"
    )
    assert library_error(TypeError("other: x"), OPTION_OF) == "other: x"

"""A training knob is defined once: the CLI's flags and the training API's options are the same fields, with the
same bounds, and a learning rate not given is the deployment's."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ops.cli import parser
from ops.cli_training import options_from
from training.options import DPROptions, KeywordOptions, LRURecOptions, QAOptions, RankerOptions, given_lr

COMMANDS = {"lrurec": LRURecOptions, "ranker": RankerOptions, "dpr": DPROptions, "qa-adapter": QAOptions,
            "kobart": KeywordOptions}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_scalar_option_is_a_flag_and_flags_not_given_stay_unset(command: str, capsys) -> None:
    options = COMMANDS[command]
    with pytest.raises(SystemExit):
        parser().parse_args(["train", command, "--help"])
    shown = capsys.readouterr().out
    scalar = [n for n, f in options.model_fields.items() if f.annotation in (int, float, bool, str, int | None,
                                                                                float | None)]
    assert scalar and all(f"--{n.replace('_', '-')}" in shown for n in scalar), shown
    parsed = options_from(parser().parse_args(["train", command]), options)
    assert parsed == options() and parsed.model_fields_set == set()


def test_flags_reach_the_options_and_the_lr_not_given_is_the_deployments() -> None:
    args = parser().parse_args(["train", "dpr", "--max-questions", "8", "--no-inverse-cloze", "--epochs", "2"])
    options = options_from(args, DPROptions)
    assert (options.max_questions, options.inverse_cloze, options.epochs) == (8, False, 2)
    assert given_lr(options, 3e-4) == 3e-4
    given = options_from(parser().parse_args(["train", "dpr", "--lr", "1e-4"]), DPROptions)
    assert given_lr(given, 3e-4) == 1e-4


def test_bounds_hold_on_both_doors() -> None:
    from deployments.protocol.training import TrainRequest

    with pytest.raises(ValidationError, match="epochs"):
        options_from(parser().parse_args(["train", "kobart", "--epochs", "0"]), KeywordOptions)
    with pytest.raises(ValidationError, match="epochs"):
        TrainRequest.model_validate({"pipeline": "kobart", "kobart": {"epochs": 0}})
    for misspelt in ({"pipeline": "lrurec", "lrurec": {"max_epoch": 1}}, {"pipeline": "lrurec", "lrureq": {}}):
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            TrainRequest.model_validate(misspelt)
    request = TrainRequest.model_validate({"pipeline": "dpr", "dpr": {"epochs": 2}})
    sent = request.model_dump(exclude={"pipeline"}, exclude_unset=True)
    assert sent == {"dpr": {"epochs": 2}}  # what the trainer passes on: an lr not given stays the deployment's


def test_a_choice_is_a_flag_with_its_choices_on_both_doors(capsys) -> None:
    parsed = options_from(parser().parse_args(["train", "ranker", "--negatives", "random"]), RankerOptions)
    assert parsed.negatives == "random" and parsed.model_fields_set == {"negatives"}
    with pytest.raises(SystemExit):
        parser().parse_args(["train", "ranker", "--negatives", "hard"])
    assert "invalid choice: 'hard'" in capsys.readouterr().err
    with pytest.raises(ValidationError, match="negatives"):
        RankerOptions(negatives="hard")

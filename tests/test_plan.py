"""The plan of a prompt: clauses in time order, shared person words, at-once pairs, single-action prompts kept."""

import json

import pytest

from model_core.contract.kinds import kind_of
from model_core.contract.plan import Plan, Step, make_plan

IN_TURN = [
    ("a man walks forward, then bows", ["a man walks forward", "a man bows"]),
    ("a man walks forward and then bows", ["a man walks forward", "a man bows"]),
    ("a man walks forward. then he bows", ["a man walks forward", "a man bows"]),
    ("a tired woman waves and then runs off", ["a tired woman waves", "a tired woman runs off"]),
    ("waves, then runs off", ["a person waves", "a person runs off"]),
    ("after waving, a person jogs forward", ["a person waves", "a person jogs forward"]),
    ("after bowing, an old man walks ahead", ["an old man bows", "an old man walks ahead"]),
    ("a person bows before walking away", ["a person bows", "a person walks away"]),
    ("a person bows after walking forward", ["a person walks forward", "a person bows"]),
    ("before walking off, a woman bows", ["a woman bows", "a woman walks off"]),
    ("1. walk forward 2. bow 3. wave the right hand",
     ["a person walks forward", "a person bows", "a person waves the right hand"]),
    ("first, a child raises both hands; then runs forward", ["a child raises both hands", "a child runs forward"]),
    ("someone waves, walks forward, bows", ["someone waves", "someone walks forward", "someone bows"]),
    ("a person runs, then walks, then bows", ["a person runs", "a person walks", "a person bows"]),
    ("an elderly person walks forward and bows", ["an elderly person walks forward", "an elderly person bows"]),
    ("a sad man waves his left hand and then walks backwards",
     ["a sad man waves his left hand", "a sad man walks backwards"]),
    ("she bows, after that she jogs forward", ["a woman bows", "a woman jogs forward"]),
    ("a person walks forward, finally waves with both hands",
     ["a person walks forward", "a person waves with both hands"]),
    ("bent over with age, a man walks forward, then bows",
     ["bent over with age, a man walks forward", "bent over with age, a man bows"]),
]

AT_ONCE = [
    ("an elderly person walks forward and waves with the right hand",
     "an elderly person walks forward", "an elderly person waves with the right hand"),
    ("a person walks forward while waving the right hand", "a person walks forward", "a person waves the right hand"),
    ("while walking forward, a woman waves her left hand", "a woman walks forward", "a woman waves her left hand"),
    ("a person jogs with both arms raised", "a person jogs", "a person raises both hands"),
    ("a person jogs with both hands up", "a person jogs", "a person raises both hands"),
    ("a man walks ahead holding the left hand up", "a man walks ahead", "a man raises the left hand"),
    ("a man jogs with his right hand up", "a man jogs", "a man raises the right hand"),
    ("an old man walks with both hands up", "an old man walks", "an old man raises both hands"),
    ("a person walks forward waving the left hand", "a person walks forward", "a person waves the left hand"),
    ("a tired woman runs forward as she raises her right arm", "a tired woman runs forward",
     "a tired woman raises her right arm"),
    ("a man walks forward and at the same time waves both hands", "a man walks forward", "a man waves both hands"),
    ("with heavy steps, a giant walks forward while waving his right hand", "with heavy steps, a giant walks forward",
     "with heavy steps, a giant waves his right hand"),
]

SINGLE = [
    "a person walks forward", "a person walks forward and turns left",
    "the person walks ahead, then turns to their right", "a person raises both hands and waves",
    "a happy man waves with his right hand", "with his left hand, a man waves", "a person jumps while waving",
    "an energetic guy lifts a leg and kicks", "a person dances, moving their arms and legs",
    "a lady is waving hello with the right hand, looking furious.", "a person leans forward and calls someone over",
    "walk then hang a left", "old woman strolls then veers round to her right", "a kid stomping backwards, giggling",
    "an active woman throws a jab and a cross", "a lively man walks, turns left and keeps walking",
]


@pytest.mark.parametrize("prompt, prompts", IN_TURN)
def test_in_turn_clauses_in_time_order_with_the_person_words(prompt, prompts):
    plan = make_plan(prompt)
    assert [s.prompt for s in plan.steps] == prompts
    assert all(s.together is None and s.seconds is None for s in plan.steps)
    assert not plan.single


@pytest.mark.parametrize("prompt, main, arm", AT_ONCE)
def test_at_once_pairs_a_locomotion_with_an_arm_action(prompt, main, arm):
    plan = make_plan(prompt)
    assert len(plan.steps) == 1 and not plan.single
    assert (plan.steps[0].prompt, plan.steps[0].together) == (main, arm)
    assert plan.steps[0].kind == "locomotion" and kind_of(arm.split(", ")[-1]) == "arm"


def test_at_once_inside_a_sequence():
    plan = make_plan("a tired man walks while waving, then bows")
    assert [(s.prompt, s.together) for s in plan.steps] == [
        ("a tired man walks", "a tired man waves"), ("a tired man bows", None)]


@pytest.mark.parametrize("prompt", SINGLE)
def test_one_action_keeps_the_prompt_as_written(prompt):
    plan = make_plan(prompt)
    assert plan.single and plan.steps[0].prompt == prompt


@pytest.mark.parametrize("clause, kind", [
    ("walks forward", "locomotion"), ("jogs", "locomotion"), ("takes several steps forward", "locomotion"),
    ("waves the right hand", "arm"), ("puts both hands up", "arm"), ("raises his left arm", "arm"),
    ("bows", "body"), ("takes a bow", "body"), ("kicks", "body"), ("lifts a leg", "body"), ("smiles", "other"),
])
def test_kind_of_a_clause(clause, kind):
    assert kind_of(clause) == kind


def test_held_out_prompts_are_single_actions():
    from model_core.eval.heldout import load_prompts

    prompts = [p.prompt for p in load_prompts()]
    assert len(prompts) > 300
    assert [p for p in prompts if not make_plan(p).single] == []


def test_training_and_evaluation_captions_are_single_actions():
    from model_core.data.captions import caption_labels, evaluation_captions, training_caption_pool

    contents, styles = caption_labels()
    split = []
    for content in contents:
        for style in styles[::3]:
            for caption in training_caption_pool(content, style)[::7] + evaluation_captions(content, style):
                if not make_plan(caption).single:
                    split.append(caption)
    assert split == []


def test_plan_json_round_trip_and_edits():
    plan = make_plan("an elderly person walks forward and waves with the right hand, then bows")
    again = Plan.from_json(plan.to_json())
    assert again == plan
    data = json.loads(plan.to_json())
    data["steps"][1]["seconds"] = 2.5
    data["steps"][0]["together"] = None
    edited = Plan.from_json(json.dumps(data))
    assert edited.steps[1].seconds == 2.5 and edited.steps[0].together is None and not edited.single
    assert "2.5 s" in edited.describe() and "at once" not in edited.describe()


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"), ("[]", "non-empty 'steps'"), ('{"steps": []}', "non-empty 'steps'"),
    ('{"steps": [{"prompt": ""}]}', "step 1 needs"), ('{"steps": [{"prompt": "a", "seconds": 20}]}', "seconds"),
    ('{"steps": [{"prompt": "a", "seconds": true}]}', "seconds"),
    ('{"steps": [{"prompt": "a", "together": 3}]}', "together"),
])
def test_bad_plan_files_give_one_line_errors(text, message):
    with pytest.raises(ValueError, match=message) as info:
        Plan.from_json(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("prompt", ["", "   ", None, 3])
def test_empty_prompt_is_refused(prompt):
    with pytest.raises(ValueError, match="empty"):
        make_plan(prompt)


def test_steps_are_plain_data():
    assert Step("a person bows").kind == "other" and Step("a person bows").seconds is None

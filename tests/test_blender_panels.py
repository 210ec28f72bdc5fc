"""Every panel's ``draw()`` (and the preferences' and UI lists') in each state, against a recording stand-in
for ``bpy.types.UILayout`` that checks each call the way Blender would: the function and its keywords exist,
enum values (icons, progress types) are valid, every ``prop(data, name)`` names a property of ``data``, every
``operator(id)`` is a registered operator and every property set on its result is one of its properties."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import bamm_blender  # noqa: E402
from bamm_blender import armature, backend, headless, panel, preferences, retarget_scene  # noqa: E402

UI = bpy.types.UILayout.bl_rna
PROP_CALLS = ("prop", "prop_enum", "prop_menu_enum", "prop_tabs_enum", "prop_with_menu", "prop_with_popover",
              "props_enum", "prop_search", "prop_decorator")
OPERATOR_CALLS = ("operator", "operator_enum", "operator_menu_enum", "operator_menu_hold")
PANELS = (panel.BAMM_PT_main, panel.BAMM_PT_edit, panel.BAMM_PT_results, panel.BAMM_PT_sequence,
          panel.BAMM_PT_retarget)


class DrawError(AssertionError):
    """A call Blender would reject (or draw wrongly) while drawing."""


def _enum_ids(prop) -> set[str]:
    return {item.identifier for item in prop.enum_items}


def _check_prop(data, name: str, where: str) -> None:
    if data is None:
        raise DrawError(f"{where}: data is None for property {name!r}")
    rna = getattr(data, "bl_rna", None)
    if rna is None or name not in rna.properties:
        raise DrawError(f"{where}: {type(data).__name__} has no property {name!r}")


class OperatorProps:
    """What ``layout.operator`` returns: setting a property it does not have (or a bad enum value) fails."""

    def __init__(self, idname: str, sets: list):
        module, _, name = idname.partition(".")
        try:
            rna = getattr(getattr(bpy.ops, module), name).get_rna_type()
        except (KeyError, AttributeError) as e:
            raise DrawError(f"operator {idname!r} is not registered") from e
        object.__setattr__(self, "_rna", rna)
        object.__setattr__(self, "_id", idname)
        object.__setattr__(self, "_sets", sets)

    def __setattr__(self, name, value):
        prop = self._rna.properties.get(name)
        if prop is None or name == "rna_type":
            raise DrawError(f"operator {self._id!r} has no property {name!r}")
        if prop.type == "ENUM" and value not in _enum_ids(prop):
            raise DrawError(f"operator {self._id!r}: {name} = {value!r} is not one of {sorted(_enum_ids(prop))}")
        self._sets.append(("operator property", {"operator": self._id, name: value}))


class Layout:
    """Records every call; validates it against UILayout's RNA. ``calls``: shared list of (function, arguments)."""

    def __init__(self, context, calls: list):
        object.__setattr__(self, "_context", context)
        object.__setattr__(self, "calls", calls)

    def __setattr__(self, name, value):
        if name not in UI.properties or name == "rna_type":
            raise DrawError(f"UILayout has no attribute {name!r}")
        self.calls.append(("set", {name: value}))

    def __getattr__(self, name):
        function = UI.functions.get(name)
        if function is None:
            raise DrawError(f"UILayout has no function {name!r}")
        return lambda *args, **kwargs: self._call(name, function, args, kwargs)

    def _call(self, name, function, args, kwargs):
        params = [p for p in function.parameters if not p.is_output]
        names = [p.identifier for p in params]
        if len(args) > len(names):
            raise DrawError(f"{name}: {len(args)} positional arguments, takes {len(names)}")
        bound = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names or key in bound:
                raise DrawError(f"{name}: unexpected or repeated keyword {key!r}")
            bound[key] = value
        for p in params:
            if p.is_required and p.identifier not in bound:
                raise DrawError(f"{name}: missing argument {p.identifier!r}")
            if p.type == "ENUM" and p.identifier in bound and bound[p.identifier] not in _enum_ids(p):
                raise DrawError(f"{name}: {p.identifier} = {bound[p.identifier]!r} is not a valid value")
        self.calls.append((name, bound))
        if name in PROP_CALLS:
            _check_prop(bound["data"], bound["property"], name)
        if name == "prop_search":
            _check_prop(bound["search_data"], bound["search_property"], name)
        if name == "template_list":
            self._template_list(bound)
        if name in OPERATOR_CALLS:
            return OperatorProps(bound["operator"], self.calls)
        if any(p.is_output and p.identifier == "layout" for p in function.parameters):
            return Layout(self._context, self.calls)
        return None

    def _template_list(self, bound) -> None:
        """Check the list's class and properties, then draw every item with the class's ``draw_item``."""
        cls = getattr(bpy.types, bound["listtype_name"], None)
        if cls is None or not getattr(cls, "is_registered", False):
            raise DrawError(f"template_list: UI list {bound['listtype_name']!r} is not registered")
        _check_prop(bound["dataptr"], bound["propname"], "template_list")
        _check_prop(bound["active_dataptr"], bound["active_propname"], "template_list")
        stand_in = SimpleNamespace(layout_type="DEFAULT", filter_name="", use_filter_show=False)
        for index, item in enumerate(getattr(bound["dataptr"], bound["propname"])):
            cls.draw_item(stand_in, self._context, Layout(self._context, self.calls), bound["dataptr"], item, 0,
                          bound["active_dataptr"], bound["active_propname"], index)


def draw(cls, context) -> list:
    """Run a panel's ``draw`` (when ``poll`` allows) on a recording layout; the recorded calls."""
    calls: list = []
    if hasattr(cls, "poll") and not cls.poll(context):
        return calls
    cls.draw(SimpleNamespace(layout=Layout(context, calls), bl_rna=cls.bl_rna), context)
    return calls


def operators_in(calls) -> list[str]:
    return [bound["operator"] for name, bound in calls if name in OPERATOR_CALLS]


def operator_properties(calls) -> list[dict]:
    return [bound for name, bound in calls if name == "operator property"]


def props_in(calls) -> list[str]:
    return [bound["property"] for name, bound in calls if name in PROP_CALLS]


def labels_in(calls) -> list[str]:
    return [bound.get("text", "") for name, bound in calls if name == "label"]


# --------------------------------------------------------------------------------------------- states
def walk(frames: int, shift: float = 0.0) -> np.ndarray:
    """A rest pose sliding forward 1 m/s: joints (frames, 22, 3) float32."""
    joints = np.repeat(armature.reference_rest()[None], frames, 0)
    joints[:, :, 2] += np.arange(frames)[:, None] / 20.0 + shift
    return joints.astype(np.float32)


class FakeBackend:
    """Finishes every request at once with sliding rest poses (no model): for the 'results' state."""

    def submit(self, request):
        job = backend.Job(request)
        frames = request.args.get("frames") or 40
        motions = [backend.Generated(walk(frames, 0.1 * k), request.args.get("prompt"), None)
                   for k in range(request.args.get("n", 1))]
        job.finish("done", result=motions)
        return job


@pytest.fixture(scope="module")
def addon():
    bamm_blender.register()
    with headless.use_engine(headless.Engine(FakeBackend(), {"random": {}})):
        yield
    bamm_blender.unregister()


@pytest.fixture
def ctx(addon):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context
    bpy.context.window_manager.bamm_running = False


def set_state(ctx, state: str) -> None:
    s, wm = ctx.scene.bamm, ctx.window_manager
    if state == "seconds":
        s.length_mode = "SECONDS"
    elif state == "running":
        wm.bamm_running, wm.bamm_progress, wm.bamm_status = True, 0.4, "tokens 40%"
    elif state == "error":
        wm.bamm_error = "BAMM failed: The BAMM worker process was killed by signal 9; it will be restarted on " \
                        "the next request. Last log line: Traceback (most recent call last)"
        wm.bamm_error_kind = "failure"
    elif state == "input error":
        wm.bamm_error, wm.bamm_error_kind = "The prompt is empty: describe the motion", "input"
    elif state in ("results", "deleted result"):
        headless.generate(ctx, prompt="a person walks", seconds=2.0, variations=2, timeout=10)
        if state == "deleted result":
            bpy.data.actions.remove(s.results[0].action)
    elif state.startswith("range "):
        s.range_source = state.split()[1]
    elif state == "character":
        character = armature.build_armature(ctx, name="Character")
        ctx.scene.bamm_retarget.target = character
        retarget_scene.fill_bone_map(ctx)
    elif state != "empty":
        raise ValueError(state)


STATES = ("empty", "seconds", "running", "error", "input error", "results", "deleted result", "range MANUAL", "range MARKERS",
          "character")


@pytest.mark.parametrize("state", STATES)
def test_every_panel_draws(ctx, state):
    set_state(ctx, state)
    calls = {cls.__name__: draw(cls, ctx) for cls in PANELS}
    main = calls["BAMM_PT_main"]
    running = state == "running"
    assert ("bamm.cancel" in operators_in(main)) == running
    assert ("bamm.generate" in operators_in(main)) == (not running)
    assert any(name == "progress" for name, _ in main) == running
    assert ("seconds" in props_in(main)) == (state == "seconds")
    assert ("bamm.dismiss_error" in operators_in(main)) == (state in ("error", "input error"))
    assert labels_in(main)[0] == "Model: Shipped (Bandai-Namco)"  # the active model, first
    text = " ".join(labels_in(main)[1:])
    if state == "error":
        assert text.startswith("BAMM failed: ") and "killed by signal 9" in text and "restarted" in text
    assert ("Check the input: The prompt is empty" in text) == (state == "input error")
    assert ("range_start" in props_in(calls["BAMM_PT_edit"])) == (state == "range MANUAL")
    sides = [b["side"] for b in operator_properties(calls["BAMM_PT_edit"]) if b["operator"] == "bamm.extend"]
    assert sides == ["BEFORE", "AFTER"]
    result_labels = labels_in(calls["BAMM_PT_results"])
    names = [item.action.name if item.action else "(deleted)" for item in ctx.scene.bamm.results]
    assert [label for label in result_labels if not label.endswith(" fr")] == names
    assert ("(deleted)" in result_labels) == (state == "deleted result")
    bones = [b for name, b in calls["BAMM_PT_retarget"] if name == "prop_search"]
    assert len(bones) == (22 if state == "character" else 0)  # one bone field per joint of the map


@pytest.mark.parametrize("backend_kind", ["RUNTIME", "WORKER", "IN_PROCESS"])
@pytest.mark.parametrize("encoder", ["WEIGHTS", "CLIP"])
def test_preferences_draw(addon, backend_kind, encoder):
    values = dict(vars(preferences.DEFAULTS), backend=backend_kind, text_encoder=encoder, models=[],
                  models_index=-1)
    stand_in = SimpleNamespace(**values)
    stand_in.bl_rna = preferences.BAMM_Preferences.bl_rna
    calls: list = []
    stand_in.layout = Layout(bpy.context, calls)
    preferences.BAMM_Preferences.draw(stand_in, bpy.context)
    drawn = props_in(calls)
    assert drawn[0] == "backend" and "device" in drawn
    assert {"bamm.import_published", "bamm.model_add_folder", "bamm.model_remove"} <= set(operators_in(calls))
    assert "Shipped (Bandai-Namco)" in labels_in(calls)
    assert ("python_path" in drawn) == (backend_kind == "WORKER")
    assert ("clip_path" in drawn) == (encoder == "CLIP")
    greyed = [b["active"] for name, b in calls if name == "set" and "active" in b]  # torch-only settings
    assert greyed and all(active == (backend_kind != "RUNTIME") for active in greyed)


# ----------------------------------------------------------------------------- the stand-in itself
def _bad_draw_prop(layout, context):
    layout.prop(context.scene.bamm, "no_such_setting")


def _bad_draw_operator(layout, _context):
    layout.operator("bamm.no_such_operator")


def _bad_draw_operator_property(layout, _context):
    layout.operator("bamm.extend").sides = "BEFORE"


def _bad_draw_enum(layout, _context):
    layout.operator("bamm.extend").side = "LEFT"


def _bad_draw_icon(layout, _context):
    layout.label(text="x", icon="NO_SUCH_ICON")


def _bad_draw_keyword(layout, context):
    layout.prop(context.scene.bamm, "prompt", txt="")


def _bad_draw_function(layout, _context):
    layout.progress_bar(factor=0.5)


def _bad_draw_list(layout, context):
    layout.template_list("BAMM_UL_nothing", "", context.scene.bamm, "results", context.scene.bamm, "results_index")


@pytest.mark.parametrize("bad, message", [
    (_bad_draw_prop, "no property 'no_such_setting'"),
    (_bad_draw_operator, "not registered"),
    (_bad_draw_operator_property, "no property 'sides'"),
    (_bad_draw_enum, "side = 'LEFT'"),
    (_bad_draw_icon, "icon = 'NO_SUCH_ICON'"),
    (_bad_draw_keyword, "unexpected or repeated keyword 'txt'"),
    (_bad_draw_function, "no function 'progress_bar'"),
    (_bad_draw_list, "not registered"),
])
def test_stand_in_rejects_what_blender_rejects(ctx, bad, message):
    with pytest.raises(DrawError, match=message):
        bad(Layout(ctx, []), ctx)

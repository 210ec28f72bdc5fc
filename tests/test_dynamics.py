"""Dynamics metrics against hand-made clips whose answers are known analytically."""

import numpy as np
import pytest

from model_core.eval import dynamics as dyn
from model_core.motion.skeleton import rest_joints

FPS = 20.0
L_TOE, R_TOE = dyn.TOES


def still(frames: int = 40) -> np.ndarray:
    """The rest pose standing with its lowest joint on the floor, repeated ``frames`` times."""
    pose = rest_joints().astype(np.float64)
    pose[:, 1] -= pose[:, 1].min()
    return np.repeat(pose[None], frames, axis=0)


def yawed(joints: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Joints turned by ``yaw_deg`` about +Y (positive turns +Z towards +X)."""
    a = np.radians(yaw_deg)
    rot = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    return joints @ rot.T


def test_rest_pose_faces_plus_z():
    np.testing.assert_allclose(dyn.facing(still(2)), [[0.0, 1.0], [0.0, 1.0]], atol=1e-12)


@pytest.mark.parametrize("frames", [3, 40])
def test_still_pose_has_no_motion(frames):
    clip = still(frames)
    assert dyn.clip_dynamics(clip, fps=FPS) == {"acceleration": 0.0, "high_frequency": 0.0, "foot_skate": 0.0,
                                                "penetration": 0.0}
    assert dyn.travel(clip).direction == "in place"


@pytest.mark.parametrize("velocity", [(0.5, 0.0, 0.0), (0.0, 0.0, -1.3), (0.2, 0.4, 0.9)])
def test_constant_velocity_has_no_acceleration(velocity):
    t = np.arange(30)[:, None, None] / FPS
    clip = still(30) + t * np.array(velocity)
    assert dyn.acceleration(clip, fps=FPS) == pytest.approx(0.0, abs=1e-9)
    assert dyn.high_frequency_share(clip) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("amplitude, hertz", [(0.05, 1.0), (0.2, 0.5), (0.01, 4.0)])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_sinusoid_acceleration_and_high_frequency_share(amplitude, hertz, axis):
    """x = A sin(w t): the acceleration norm averages A w² · 2/pi over whole periods, and the share of the
    second difference in the first is 2 sin(w / 2 fps) (both up to the discrete central difference)."""
    w = 2.0 * np.pi * hertz
    frames = int(round(4 * FPS / hertz)) + 1  # four whole periods
    offset = np.zeros(3)
    offset[axis] = 1.0
    t = np.arange(frames) / FPS
    clip = still(frames) + amplitude * np.sin(w * t)[:, None, None] * offset
    exact = 2.0 * (1.0 - np.cos(w / FPS)) * FPS ** 2 * amplitude * 2.0 / np.pi  # discrete second difference
    assert dyn.acceleration(clip, fps=FPS) == pytest.approx(exact, rel=0.02)
    # the central difference underestimates w² by about (w / fps)² / 12
    continuous = amplitude * w ** 2 * 2.0 / np.pi
    assert dyn.acceleration(clip, fps=FPS) == pytest.approx(continuous, rel=(w / FPS) ** 2 / 12 + 0.01)
    assert dyn.high_frequency_share(clip) == pytest.approx(2.0 * np.sin(w / (2.0 * FPS)), rel=0.02)


def test_noise_has_a_larger_high_frequency_share_than_smooth_motion():
    rng = np.random.default_rng(0)
    t = np.arange(60)[:, None, None] / FPS
    smooth = still(60) + 0.3 * np.sin(2.0 * t)
    noisy = smooth + rng.normal(0.0, 0.01, smooth.shape)
    assert dyn.high_frequency_share(noisy) > 5 * dyn.high_frequency_share(smooth)
    assert dyn.acceleration(noisy) > 5 * dyn.acceleration(smooth)


def feet(left_height, right_height, left_speed: float, frames: int = 41) -> np.ndarray:
    """A still body whose left toe slides along +X at ``left_speed`` m/s; toe heights per frame (m)."""
    clip = still(frames)
    clip[:, L_TOE, 0] += left_speed * np.arange(frames) / FPS
    clip[:, L_TOE, 1] = left_height
    clip[:, R_TOE, 1] = right_height
    return clip


@pytest.mark.parametrize("speed", [0.0, 0.4, 1.5])
@pytest.mark.parametrize("left, right, grounded_share", [
    (0.0, 0.3, 1.0),    # sliding toe on the floor, other foot lifted: all skate
    (0.0, 0.04, 0.5),   # both toes within 5 cm of the lowest: half the grounded steps slide
    (0.3, 0.0, 0.0),    # sliding toe lifted: no skate
    (0.06, 0.0, 0.0),   # just above the 5 cm margin: no skate
])
def test_foot_skate_counts_only_grounded_toes(speed, left, right, grounded_share):
    assert dyn.foot_skate(feet(left, right, speed), fps=FPS) == pytest.approx(speed * grounded_share, abs=1e-9)


@pytest.mark.parametrize("speed", [0.3, 2.0])
def test_foot_skate_of_a_toe_that_slides_on_the_floor_then_lifts(speed):
    frames = 41
    left = np.where(np.arange(frames) < 20, 0.0, 0.25)  # steps 0..18 on the floor, 19 lifts off
    clip = feet(left, 0.4, speed, frames)
    grounded = dyn.grounded_steps(clip)
    assert grounded[:, 0].sum() == 19 and not grounded[:, 1].any()
    assert dyn.foot_skate(clip, fps=FPS) == pytest.approx(speed, abs=1e-9)


@pytest.mark.parametrize("depth", [0.005, 0.02, 0.1])
@pytest.mark.parametrize("sunk_frames", [5, 30])
def test_penetration_is_the_depth_below_the_usual_floor(depth, sunk_frames):
    frames = 200
    height = np.full(frames, 0.02)
    height[50:50 + sunk_frames] -= depth
    clip = feet(height, height + 0.1, 0.0, frames)  # the lower toe sinks for a few frames
    assert dyn.penetration(clip) == pytest.approx(depth, abs=1e-9)
    assert dyn.clip_dynamics(clip)["penetration"] == pytest.approx(100.0 * depth, abs=1e-7)


@pytest.mark.parametrize("lift", [0.0, 0.25, 1.1])
def test_foot_lift_is_the_highest_ankle_or_toe_above_their_lowest(lift):
    clip = still(20)
    feet = list(dyn.FEET)
    floor = clip[:, feet, 1].min()
    rest = clip[0, feet, 1].max() - floor  # standing: the ankles above the toes
    clip[10, dyn.FEET[0], 1] += lift  # the left ankle raised on one frame: a kick at its peak
    assert dyn.foot_lift(clip) == pytest.approx(max(rest, clip[10, dyn.FEET[0], 1] - floor))
    assert dyn.foot_lift(clip + [3.0, 0.0, -2.0]) == pytest.approx(dyn.foot_lift(clip))  # horizontal travel: none


def test_penetration_ignores_a_single_frame():
    height = np.zeros(200)
    height[100] = -0.05
    assert dyn.penetration(feet(height, height, 0.0, 200)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("yaw", [0.0, 90.0, -135.0, 180.0])
@pytest.mark.parametrize("way, expected", [((1.0, 0.0), "forward"), ((-1.0, 0.0), "backward"),
                                           ((0.0, 1.0), "left"), ((0.0, -1.0), "right"),
                                           ((0.8, 0.5), "forward"), ((0.01, 0.0), "in place")])
def test_travel_direction_relative_to_facing(yaw, way, expected):
    """A body turned by ``yaw`` translated 2 m along (forward, left) of its own facing."""
    frames = 41
    a = np.radians(yaw)
    forward, left = np.array([np.sin(a), 0.0, np.cos(a)]), np.array([np.cos(a), 0.0, -np.sin(a)])
    s = np.linspace(0.0, 2.0, frames)[:, None, None]
    clip = yawed(still(frames), yaw) + s * (way[0] * forward + way[1] * left)
    result = dyn.travel(clip)
    assert result.direction == expected
    assert result.forward_m == pytest.approx(2.0 * way[0], abs=1e-9)
    assert result.left_m == pytest.approx(2.0 * way[1], abs=1e-9)


def test_left_is_the_characters_left_hip_side():
    clip = still(21)
    lateral = clip[0, 1] - clip[0, 2]  # l_hip - r_hip
    moved = clip + np.linspace(0.0, 1.0, 21)[:, None, None] * lateral / np.linalg.norm(lateral)
    assert dyn.travel(moved).direction == "left"


def test_travel_follows_a_turning_walker():
    """Walking a quarter circle while always facing along the path is forward travel, not sideways."""
    frames, radius = 81, 3.0
    angle = np.linspace(0.0, np.pi / 2, frames)
    clip = np.stack([yawed(still(1), np.degrees(a))[0] for a in angle])
    clip[..., 0] += (radius * (1.0 - np.cos(angle)))[:, None]
    clip[..., 2] += (radius * np.sin(angle))[:, None]
    result = dyn.travel(clip)
    assert result.direction == "forward"
    assert result.forward_m == pytest.approx(radius * np.pi / 2, rel=1e-3)
    assert abs(result.left_m) < 0.01


def test_direction_matches_counts_only_directed_locomotion():
    frames = 21
    s = np.linspace(0.0, 2.0, frames)[:, None, None]
    ahead, back = still(frames) + s * [0, 0, 1], still(frames) - s * [0, 0, 1]
    share, n = dyn.direction_matches([ahead, back, ahead, still(frames)],
                                     ["walk", "walk", "walk-back", "wave-left-hand"])
    assert (share, n) == (pytest.approx(1 / 3), 3)
    assert dyn.direction_matches([ahead], ["bow"])[1] == 0


def test_set_dynamics_median_and_mean():
    t = np.arange(41)[:, None, None] / FPS
    clips = [still(41), still(41) + 0.1 * np.sin(2 * np.pi * t), still(41) + 0.1 * np.sin(4 * np.pi * t)]
    per_clip = [dyn.acceleration(c) for c in clips]
    assert dyn.set_dynamics(clips)["acceleration"] == pytest.approx(np.median(per_clip))
    assert dyn.set_dynamics(clips, statistic="mean")["acceleration"] == pytest.approx(np.mean(per_clip))


def test_dynamics_table_shows_ratios_to_real():
    sets = {"real": {"acceleration": 2.0, "high_frequency": 0.25, "foot_skate": 0.01, "penetration": 0.1},
            "generated": {"acceleration": 5.0, "high_frequency": 0.5, "foot_skate": 0.1, "penetration": 1.2}}
    table = dyn.format_dynamics_table(sets, title="t")
    row = next(line for line in table.splitlines() if line.startswith("mean joint acceleration"))
    assert row.split()[-3:] == ["2.0000", "5.0000", "2.50"]
    with pytest.raises(ValueError, match="reference set"):
        dyn.format_dynamics_table({"generated": sets["generated"]})


@pytest.mark.parametrize("call, bad, message", [
    (dyn.acceleration, np.zeros((10, 21, 3)), "shape"),
    (dyn.acceleration, np.zeros((2, 22, 3)), "at least 3 frames"),
    (dyn.clip_dynamics, np.full((10, 22, 3), np.nan), "NaN"),
    (dyn.travel, np.zeros((10, 22)), "shape"),
    (dyn.travel, np.zeros((10, 22, 3)), "facing is undefined"),
    (dyn.set_dynamics, [], "at least one clip"),
])
def test_bad_input_is_a_clear_error(call, bad, message):
    with pytest.raises(ValueError, match=message):
        call(bad)


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="fps"):
        dyn.acceleration(still(5), fps=0)
    with pytest.raises(ValueError, match="statistic"):
        dyn.set_dynamics([still(5)], statistic="max")
    with pytest.raises(ValueError, match="percentile"):
        dyn.penetration(still(5), percentile=60)
    with pytest.raises(ValueError, match="content labels"):
        dyn.direction_matches([still(5)], [])

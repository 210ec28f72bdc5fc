"""Motion representation: SMPL-22 skeleton, HumanML3D features, BVH files, rig mapping, inverse kinematics."""

"""Test-only stand-in for torchvision.transforms: the names `clip` imports, as trivial classes.

They can be built (`clip.load` builds its image transform) but not applied: the text tests never use images.
"""

import enum


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


class _Transform:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __call__(self, image):
        raise NotImplementedError(f"{type(self).__name__} is a test stand-in: image transforms are not available")


class Compose(_Transform):
    pass


class Resize(_Transform):
    pass


class CenterCrop(_Transform):
    pass


class ToTensor(_Transform):
    pass


class Normalize(_Transform):
    pass

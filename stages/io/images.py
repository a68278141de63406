"""Encode and decode single images (video frames, flow fields) as byte strings.

Codecs: `jpeg` (lossy, small, fast to decode), `png` (lossless), `raw` (the pixels as they are).
The README's "frames.h5" section gives the measurements behind the defaults.
"""

from __future__ import annotations

import cv2
import numpy as np

from stages.runtime.choices import IMAGE_CODECS
from stages.runtime.errors import SlicError

# OpenCV >= 4.10 decodes straight to RGB; older versions decode BGR and convert.
_DECODE_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def encode_image(image: np.ndarray, codec: str, quality: int = 90) -> np.ndarray:
    """Encode an (H, W, 3) RGB or (H, W) gray uint8 image; returns a 1-D uint8 array."""
    if codec == "raw":
        return np.ascontiguousarray(image).reshape(-1)
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if codec == "jpeg":
        ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    elif codec == "png":
        ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        raise SlicError(f"unknown image codec {codec!r}; choose one of {', '.join(IMAGE_CODECS)}")
    if not ok:
        raise SlicError(f"OpenCV could not encode a {image.shape} image as {codec}")
    return encoded.reshape(-1)


def decode_image(
    encoded: np.ndarray, codec: str, height: int, width: int, channels: int
) -> np.ndarray:
    """Decode one image; returns (H, W, 3) RGB uint8 when `channels` is 3, else (H, W) uint8."""
    if codec == "raw":
        shape = (height, width, channels) if channels == 3 else (height, width)
        return encoded.reshape(shape)
    flag = (_DECODE_RGB or cv2.IMREAD_COLOR) if channels == 3 else cv2.IMREAD_GRAYSCALE
    image = cv2.imdecode(encoded, flag)
    if image is None:
        raise SlicError(f"a stored {codec} image could not be decoded: the artifact is damaged")
    if channels == 3 and _DECODE_RGB is None:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def decode_gray(encoded: np.ndarray, codec: str, height: int, width: int) -> np.ndarray:
    """Decode a stored RGB frame straight to (H, W) uint8 luma (JPEG skips its chroma)."""
    if codec == "raw":
        return cv2.cvtColor(encoded.reshape(height, width, 3), cv2.COLOR_RGB2GRAY)
    image = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SlicError(f"a stored {codec} image could not be decoded: the artifact is damaged")
    return image

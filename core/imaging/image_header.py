"""Checks on encoded image bytes before they are decoded: declared size and completeness.

A few hundred bytes of PNG, JPEG or BMP header can declare a picture of gigabytes, and libjpeg turns a
truncated JPEG into a full-size picture padded with grey: a 600-byte JPEG declaring 20000 x 20000 pixels
decodes to 1.2 GB. Every place that decodes bytes from outside calls :func:`check_encoded_image` first;
other formats rely on OpenCV's own limit (``OPENCV_IO_MAX_IMAGE_PIXELS``, 2^30 pixels).
"""

from __future__ import annotations

#: Largest picture decoded (a 16k x 8k line-scan frame); bigger ones are refused from their header.
MAX_IMAGE_PIXELS = 1 << 27
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"
# Start-of-frame markers (baseline, progressive, lossless, arithmetic...): not DHT (C4), JPG (C8), DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = frozenset(range(0xD0, 0xD8)) | {0x01, 0xFF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the first start-of-frame segment, or ``None`` when there is none."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in _JPEG_NO_LENGTH:
            i += 1 if marker == 0xFF else 2  # fill byte, or a marker without a length
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before it
            return None
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def declared_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` a PNG, JPEG or BMP header declares, without decoding; ``None`` for other bytes."""
    if data.startswith(PNG_MAGIC) and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(JPEG_MAGIC):
        return _jpeg_size(data)
    if data.startswith(b"BM") and len(data) >= 26:
        if int.from_bytes(data[14:18], "little") == 12:  # OS/2 header: 16-bit sizes
            return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
        width = int.from_bytes(data[18:22], "little", signed=True)
        height = int.from_bytes(data[22:26], "little", signed=True)  # negative: stored top-down
        return abs(width), abs(height)
    return None


def check_encoded_image(data: bytes, what: str = "image") -> None:
    """Raise ``ValueError`` (one line naming ``what``) for a truncated PNG or JPEG or a declared size over
    :data:`MAX_IMAGE_PIXELS`; return quietly for anything else (the decoder judges the rest)."""
    end = data.rstrip(b"\x00")
    if data.startswith(PNG_MAGIC) and not end.endswith(_PNG_END):
        # libpng can return a partly decoded picture for a cut-off file; the IEND chunk proves completeness.
        raise ValueError(f"{what} is a truncated PNG file ({len(data)} bytes, no end marker)")
    if data.startswith(JPEG_MAGIC) and not end.endswith(_JPEG_END):
        # libjpeg pads a cut-off file with grey and reports success; the end-of-image marker proves completeness.
        raise ValueError(f"{what} is a truncated JPEG file ({len(data)} bytes, no end marker)")
    size = declared_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{what} declares {size[0]} x {size[1]} pixels, more than the {MAX_IMAGE_PIXELS} an image may have"
        )

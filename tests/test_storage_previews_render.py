"""The preview renderer: real PNG, JPEG and GIF files, decompression bombs and non-images."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from frontdesk.storage.previews import (
    ImageTooLarge,
    NotAnImage,
    render_preview,
    render_preview_in_thread,
)

MAX_PIXELS = 40_000_000


def image_bytes(size: tuple[int, int], fmt: str, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    color = (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30)
    Image.new(mode, size, color[: len(mode)]).save(buffer, format=fmt)
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """Build a PNG whose header declares ``width`` x ``height`` but whose data is one row."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    pixels = zlib.compress(b"\0" + b"\0" * 3 * 8)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_keeps_aspect_ratio(fmt: str, content_type: str) -> None:
    source = image_bytes((800, 400), fmt)

    preview = render_preview(
        source,
        content_type=content_type,
        width=320,
        height=320,
        output="webp",
        max_pixels=MAX_PIXELS,
    )

    assert (preview.width, preview.height) == (320, 160)
    assert preview.content_type == "image/webp"
    image = decoded(preview.data)
    assert image.format == "WEBP"
    assert image.size == (320, 160)


@pytest.mark.parametrize(("output", "pillow_format"), [("png", "PNG"), ("jpeg", "JPEG")])
def test_output_formats(output: str, pillow_format: str) -> None:
    source = image_bytes((100, 300), "PNG", mode="RGBA")

    preview = render_preview(
        source,
        content_type="image/png",
        width=50,
        height=50,
        output=output,  # type: ignore[arg-type]
        max_pixels=MAX_PIXELS,
    )

    image = decoded(preview.data)
    assert image.format == pillow_format
    assert image.size == (17, 50)


def test_small_image_not_enlarged() -> None:
    preview = render_preview(
        image_bytes((10, 20), "PNG"),
        content_type="image/png",
        width=320,
        height=320,
        output="png",
        max_pixels=MAX_PIXELS,
    )

    assert (preview.width, preview.height) == (10, 20)


@pytest.mark.parametrize("size", [(50_000, 50_000), (7000, 7000)])
def test_bomb_rejected(size: tuple[int, int]) -> None:
    bomb = bomb_png(*size)
    assert len(bomb) < 200

    with pytest.raises(ImageTooLarge, match="decompression bomb"):
        render_preview(
            bomb,
            content_type="image/png",
            width=320,
            height=320,
            output="webp",
            max_pixels=MAX_PIXELS,
        )


def test_limit_names_declared_size() -> None:
    with pytest.raises(ImageTooLarge) as caught:
        render_preview(
            bomb_png(7000, 7000),
            content_type="image/png",
            width=320,
            height=320,
            output="webp",
            max_pixels=MAX_PIXELS,
        )

    assert caught.value.size == (7000, 7000)
    assert "7000x7000" in str(caught.value)


def test_limit_from_setting() -> None:
    source = image_bytes((100, 100), "PNG")

    with pytest.raises(ImageTooLarge):
        render_preview(
            source, content_type="image/png", width=50, height=50, output="png", max_pixels=9_999
        )
    preview = render_preview(
        source, content_type="image/png", width=50, height=50, output="png", max_pixels=10_000
    )
    assert preview.width == 50


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"%PDF-1.7 not an image at all", "image/png"),
        (b"", "image/jpeg"),
        (image_bytes((10, 10), "PNG"), "image/jpeg"),
        (image_bytes((10, 10), "PNG")[:40], "image/png"),
        (image_bytes((10, 10), "PNG"), "application/pdf"),
    ],
    ids=["text", "empty", "wrong-type", "truncated", "not-image-type"],
)
def test_not_an_image(data: bytes, content_type: str) -> None:
    with pytest.raises(NotAnImage):
        render_preview(
            data,
            content_type=content_type,
            width=50,
            height=50,
            output="png",
            max_pixels=MAX_PIXELS,
        )


async def test_renders_in_thread() -> None:
    preview = await render_preview_in_thread(
        image_bytes((64, 32), "JPEG"),
        content_type="image/jpeg",
        width=32,
        height=32,
        output="jpeg",
        max_pixels=MAX_PIXELS,
    )

    assert (preview.width, preview.height) == (32, 16)

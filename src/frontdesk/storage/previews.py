"""Image previews: resized thumbnails rendered with Pillow, with a decompression-bomb limit.

Previews are rendered on demand in a worker thread (``asyncio.to_thread``) and not stored,
so no derived blob outlives its object. The response carries an ETag made from the
object's checksum and the preview parameters, so clients and proxies cache it.

Pillow reads only the header in ``Image.open``; the pixel count is checked against
``preview_max_pixels`` before any pixel data is decoded, so an image that declares
50000x50000 pixels in a small file is rejected without allocating its memory.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

PreviewFormat = Literal["webp", "jpeg", "png"]

# Content types that previews accept, and the Pillow format each must decode as, so that a
# file labelled image/png that is really another format is rejected.
PREVIEW_SOURCE_TYPES = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
OUTPUT_TYPES: dict[str, tuple[str, str]] = {
    "webp": ("WEBP", "image/webp"),
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
}
DEFAULT_BOX = 320
MAX_BOX = 2048


class PreviewError(Exception):
    """The bytes cannot be turned into a preview; the message gives the reason."""


class NotAnImage(PreviewError):
    pass


class ImageTooLarge(PreviewError):
    def __init__(self, max_pixels: int, size: tuple[int, int] | None = None) -> None:
        declared = f"{size[0]}x{size[1]} pixels" if size else "more pixels"
        super().__init__(
            f"the image declares {declared}, over the limit of {max_pixels} pixels, so it "
            "may be a decompression bomb and no preview is made"
        )
        self.size = size


@dataclass(frozen=True)
class Preview:
    data: bytes
    content_type: str
    width: int
    height: int


def _flatten(image: Image.Image, output_format: str) -> Image.Image:
    """Convert to a mode that the output format can store; JPEG has no alpha channel."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if output_format == "JPEG":
        if has_alpha:
            rgba = image.convert("RGBA")
            background = Image.new("RGB", rgba.size, (255, 255, 255))
            background.paste(rgba, mask=rgba.getchannel("A"))
            return background
        return image.convert("RGB")
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        return image.convert("RGBA" if has_alpha else "RGB")
    return image


def render_preview(
    data: bytes,
    *,
    content_type: str,
    width: int,
    height: int,
    output: PreviewFormat,
    max_pixels: int,
) -> Preview:
    """Render a thumbnail that fits in ``width`` x ``height``, keeping the aspect ratio.

    Raises NotAnImage when the bytes are not an image of ``content_type`` and
    ImageTooLarge when the header declares more than ``max_pixels`` pixels. Images are never
    enlarged. Only the first frame of an animated GIF or WebP is used.
    """
    expected = PREVIEW_SOURCE_TYPES.get(content_type)
    if expected is None:
        raise NotAnImage(f"previews exist only for {', '.join(sorted(PREVIEW_SOURCE_TYPES))}")
    with warnings.catch_warnings():
        # Pillow warns past its own MAX_IMAGE_PIXELS; the explicit check below decides.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[expected])
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise NotAnImage(f"the file is not a valid {content_type} image") from exc
        except Image.DecompressionBombError as exc:
            # Pillow itself raises in open() for sizes over twice its MAX_IMAGE_PIXELS.
            raise ImageTooLarge(max_pixels) from exc
        with image:
            declared_width, declared_height = image.size
            if declared_width * declared_height > max_pixels:
                raise ImageTooLarge(max_pixels, (declared_width, declared_height))
            try:
                if expected == "JPEG":
                    # Decode at a reduced scale when the target is much smaller.
                    image.draft("RGB", (width, height))
                image.load()
                frame = ImageOps.exif_transpose(image)
                frame.thumbnail((width, height), Image.Resampling.LANCZOS)
                pillow_format, output_type = OUTPUT_TYPES[output]
                frame = _flatten(frame, pillow_format)
                buffer = io.BytesIO()
                frame.save(buffer, format=pillow_format)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                raise NotAnImage(f"the {content_type} image is damaged: {exc}") from exc
    return Preview(buffer.getvalue(), output_type, frame.width, frame.height)


async def render_preview_in_thread(
    data: bytes,
    *,
    content_type: str,
    width: int,
    height: int,
    output: PreviewFormat,
    max_pixels: int,
) -> Preview:
    """Render in a worker thread, because decoding and resizing would block the event loop."""
    return await asyncio.to_thread(
        render_preview,
        data,
        content_type=content_type,
        width=width,
        height=height,
        output=output,
        max_pixels=max_pixels,
    )

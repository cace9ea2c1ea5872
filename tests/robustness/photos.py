"""A phone photo carrying every metadata carrier, and a check that none survived."""

from __future__ import annotations

import io
import random
import struct

from PIL import Image, ImageCms

SECRET = b"GPS-secret-caption-Goma"
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
       b'22-rdf-syntax-ns#"><rdf:Description>' + SECRET + b'</rdf:Description></rdf:RDF>'
       b'</x:xmpmeta>')


def _exif_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Secret Phone 12"  # Model
    exif[0x0112] = 1  # Orientation
    gps = {1: "S", 2: (1.0, 40.0, 48.0), 3: "E", 4: (29.0, 13.0, 12.0)}
    exif[0x8825] = gps
    return exif.tobytes()


def _iptc_segment() -> bytes:
    # APP13 "Photoshop 3.0" with an IPTC caption record (2:120).
    record = b"\x1c\x02\x78" + struct.pack(">H", len(SECRET)) + SECRET
    block = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(record)) + record
    payload = b"Photoshop 3.0\x00" + block
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def phone_jpeg(size: tuple[int, int] = (4000, 3000)) -> bytes:
    """A busy photo (noise compresses badly, as real ones do) with EXIF GPS, XMP, IPTC, an
    ICC profile and a COM segment."""
    rng = random.Random(7)
    small = Image.new("RGB", (size[0] // 16, size[1] // 16))
    small.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256))
                   for _ in range(small.width * small.height)])
    img = small.resize(size, Image.Resampling.BICUBIC)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90, exif=_exif_with_gps(), icc_profile=icc,
             comment=SECRET, xmp=XMP)
    data = out.getvalue()
    return data[:2] + _iptc_segment() + data[2:]  # right after SOI


def metadata_carriers(data: bytes) -> list[str]:
    """Which metadata carriers a JPEG or PNG still holds (empty: clean)."""
    found = []
    markers = {b"Exif\x00": "EXIF", b"http://ns.adobe.com/xap": "XMP", b"ICC_PROFILE": "ICC",
               b"Photoshop 3.0": "IPTC", SECRET: "the secret text", b"Secret Phone": "EXIF",
               b"iCCP": "PNG ICC", b"tEXt": "PNG text", b"iTXt": "PNG text", b"zTXt": "PNG text",
               b"eXIf": "PNG EXIF"}
    for needle, name in markers.items():
        if needle in data:
            found.append(name)
    if data.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 4 <= len(data) and data[pos] == 0xFF:
            marker = data[pos + 1]
            if marker == 0xDA:  # start of scan: no more segments
                break
            length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
            if marker == 0xFE:
                found.append("JPEG COM")
            if 0xE1 <= marker <= 0xEF:
                found.append(f"APP{marker - 0xE0}")
            pos += 2 + length
    return found

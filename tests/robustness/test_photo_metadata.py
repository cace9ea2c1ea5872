"""Uploads keep the picture and nothing else; pages show a small preview."""

from __future__ import annotations

import io

from PIL import Image, ImageCms

from telehealth import uploads
from telehealth.consults.models import Attachment
from telehealth.extensions import db
from tests.conftest import image_bytes
from tests.robustness.photos import metadata_carriers, phone_jpeg


def _fetch(client, path):
    response = client.get(path)
    response.get_data()
    response.close()
    return response


def test_the_test_photo_carries_every_metadata_carrier():
    found = metadata_carriers(phone_jpeg((640, 480)))
    for carrier in ("EXIF", "XMP", "ICC", "IPTC", "JPEG COM", "the secret text"):
        assert carrier in found


def test_no_metadata_survives_in_the_stored_file_the_preview_or_what_is_served(
        app, client, auth, world, make_consult):
    photo = phone_jpeg((2400, 1800))
    png = io.BytesIO()
    img = Image.new("RGBA", (300, 200), (10, 200, 10, 128))
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "GPS-secret-caption-Goma")
    info.add_itxt("XML:com.adobe.xmp", "http://ns.adobe.com/xap/1.0/")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img.save(png, format="PNG", pnginfo=info, icc_profile=icc)
    consult = make_consult(world["clinician"], files=[("phone.jpg", photo),
                                                      ("chart.png", png.getvalue())])
    auth.login(world["clinician"])
    page = client.get(f"/consults/{consult.id}")
    for attachment in db.session.scalars(db.select(Attachment)):
        assert attachment.preview_name
        stored = uploads.stored_path(attachment.stored_name).read_bytes()
        preview = uploads.stored_path(attachment.preview_name).read_bytes()
        served_full = _fetch(client, f"/attachments/{attachment.id}").data
        served_preview = _fetch(client, f"/attachments/{attachment.id}/preview")
        for data in (stored, preview, served_full, served_preview.data):
            assert metadata_carriers(data) == [], attachment.original_name
        assert len(preview) <= uploads.PREVIEW_MAX_BYTES
        assert served_preview.headers["Content-Type"] == "image/jpeg"
        assert "private" in served_preview.headers["Cache-Control"]
        # The page shows the preview; the full image only behind a link.
        assert f'src="/attachments/{attachment.id}/preview"' in page.text
        assert f'src="/attachments/{attachment.id}"' not in page.text
    full = _fetch(client, f"/attachments/{attachment.id}")
    assert "no-store" in full.headers["Cache-Control"]


def test_the_picture_comes_out_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90° clockwise: the camera held sideways
    data = image_bytes(size=(80, 40), exif=exif.tobytes())
    from flask import current_app  # noqa: F401  (an app context is active)

    checked = uploads.check_upload(io.BytesIO(data), "side.jpg")
    with Image.open(io.BytesIO(checked.data)) as img:
        assert img.size == (40, 80)


def test_a_busy_photo_preview_stays_under_the_limit():
    preview = uploads.make_preview(Image.open(io.BytesIO(phone_jpeg((4000, 3000)))))
    assert len(preview) <= uploads.PREVIEW_MAX_BYTES


def test_sign_out_clears_the_browser_cache(client, auth, world):
    auth.login(world["clinician"])
    assert client.post("/logout").headers["Clear-Site-Data"] == '"cache"'

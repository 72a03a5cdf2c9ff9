"""The media pipeline end to end (issue 5), through the interface a client uses.

A corpus the test makes itself (an image in every listed format, a PDF, a few seconds of video
and audio made with PyAV, text, CSV, JSON, and hostile files) goes through GraphQL, a presigned
POST to SeaweedFS and a real `celery worker`; the jobs are followed with the `job(id)`
subscription, every fact is read back through GraphQL, and renditions are downloaded from
SeaweedFS with plain HTTP and decoded with Pillow.

One web process and one worker serve the whole module: starting them is most of the cost. So
the module owns its rows instead of using `transactional_db` (which flushes after every test):
it creates them when it starts and flushes the database when it ends, once its processes have
stopped, which leaves the database as the next test expects it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from PIL import Image, ImageCms, ImageStat
from pytest_django import DjangoDbBlocker

from domain.accounts.models import TokenScope, User
from domain.accounts.services import api_token_create, workspace_create
from domain.assets.models import Collection
from domain.common.ids import global_id
from tests import media
from tests.domain.media import corpus
from tests.e2e.conftest import ROOT, SERVICE_VARIABLES
from tests.e2e.flow import COMPLETE, START, download
from tests.support.client import GraphQLClient
from tests.support.processes import ManagedProcess, free_port, wait_for, wait_for_http

# The marker is what makes pytest-django create the test database for this module; each test's
# own transaction stays empty (the tests talk to the processes, which see committed rows only).
pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.django_db]

BIN = Path(sys.executable).parent
PARIS = (48.8584, 2.2945)
# Every job of the module is done well within this, even on two busy cores.
JOB_TIMEOUT = 90
# Subscriptions per socket are limited (DEPOT_WS_MAX_SUBSCRIPTIONS, 20).
SUBSCRIPTIONS_PER_SOCKET = 15
PILLOW_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG", "avif": "AVIF"}
DEFAULT_PRESETS = {"thumb-256", "preview-1024", "preview-1024-webp"}

JOB_DONE = """subscription($id: ID!) {
  job(id: $id) { id kind state attempts error { code message } }
}"""
ASSETS = """query($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on Asset {
      id state contentType declaredContentType originalFilename size sha256 metadata
      failure { code message }
      renditions { preset format width height size url }
      downloadUrl
    }
  }
}"""
MEDIA_SETTINGS = """query($w: ID!) {
  workspace(id: $w) { mediaSettings { allowGps presets { name maxSide format quality } } }
}"""
MEDIA_SETTINGS_UPDATE = """mutation($i: WorkspaceMediaSettingsUpdateInput!) {
  workspaceMediaSettingsUpdate(input: $i) { mediaSettings { allowGps } errors { code message } }
}"""
DELETE = """mutation($i: DeleteInput!) {
  assetDelete(input: $i) { job { id state } errors { code message } }
}"""
ASSET_COUNT = """query($c: ID!) { assets(filters: {collectionId: $c}) { totalCount } }"""


# --- the stack: one web process, one worker, two workspaces -------------------------------


@dataclass
class Space:
    """A workspace with a collection and an owner's token (read, write, admin)."""

    pk: int
    collection_pk: int
    client: GraphQLClient

    @property
    def workspace_id(self) -> str:
        return global_id("Workspace", self.pk)

    @property
    def collection_id(self) -> str:
        return global_id("Collection", self.collection_pk)


@dataclass
class Stack:
    worker: ManagedProcess
    media: Space  # default media settings: GPS dropped
    geo: Space  # its owner lets GPS through (workspaceMediaSettingsUpdate)
    files: Path


def _space(user: User, slug: str) -> tuple[int, int, str]:
    workspace = workspace_create(name=slug.title(), slug=slug, owner=user)
    collection = Collection.objects.create(workspace=workspace, name="Uploads")
    _, token = api_token_create(
        workspace=workspace,
        user=user,
        name="e2e",
        scopes=[TokenScope.READ, TokenScope.WRITE, TokenScope.ADMIN],
    )
    return workspace.pk, collection.pk, token


def _service_env(var_dir: Path) -> dict[str, str]:
    # As tests/e2e/conftest.py's service_env, for a module: the test database, this run's
    # Redis prefix, queues and bucket (inherited), a lease long enough for busy cores.
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    name = connection.settings_dict["NAME"]
    env.update(
        {
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
            "REDIS_URL": os.environ["REDIS_URL"],
            "DEPOT_VAR_DIR": str(var_dir),
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "DEPOT_JOB_LEASE_SECONDS": "30",
            "DATABASE_POOL_MAX": "4",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture(scope="module")
def stack(
    django_db_setup: None,
    django_db_blocker: DjangoDbBlocker,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    base: Path = tmp_path_factory.mktemp("media-formats")
    with django_db_blocker.unblock():
        user = User.objects.create_user(username="media-owner", password="pw-for-tests")
        spaces = {slug: _space(user, slug) for slug in ("media", "geo")}
        env = _service_env(base / "var")
    port = free_port()
    processes: list[ManagedProcess] = []
    made: dict[str, Space] = {}
    try:
        web = ManagedProcess(
            [str(BIN / "uvicorn"), "project.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--lifespan", "off"],
            log_dir=base, name="web", env=env, cwd=ROOT,
        )  # fmt: skip
        worker = ManagedProcess(
            [str(BIN / "celery"), "-A", "project", "worker", "--loglevel", "INFO",
             "--concurrency", "2", "--without-gossip", "--without-mingle",
             "--hostname", "media@%h"],
            log_dir=base, name="worker", env=env, cwd=ROOT,
        )  # fmt: skip
        # Both boot at once; waiting for each in turn then costs the slower one only.
        processes += [web.start(), worker.start()]
        url = f"http://127.0.0.1:{port}/"
        wait_for_http(url + "healthz/", 60, process=web)
        wait_for(lambda: "ready." in worker.log_tail(200), 60, what="worker", process=worker)
        made |= {
            slug: Space(pk=pk, collection_pk=collection, client=GraphQLClient(url, token))
            for slug, (pk, collection, token) in spaces.items()
        }
        files = base / "files"
        files.mkdir()
        yield Stack(worker=worker, media=made["media"], geo=made["geo"], files=files)
    finally:
        for process in processes:
            process.stop()
        for space in made.values():
            space.client.http.close()
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)


# --- the client side ----------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    content: bytes


@dataclass
class Outcome:
    asset: dict[str, Any]
    job: dict[str, Any]

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.asset["metadata"])


def _start_asset(space: Space, upload: Upload) -> dict[str, Any]:
    """assetUploadStart's payload for this file."""
    variables = {
        "i": {
            "collectionId": space.collection_id,
            "filename": upload.filename,
            "contentType": upload.content_type,
            "size": len(upload.content),
        }
    }
    return dict(space.client.data(START, variables)["assetUploadStart"])


def _start(space: Space, upload: Upload) -> str:
    """assetUploadStart, then the presigned POST straight to SeaweedFS; the asset's id."""
    started = _start_asset(space, upload)
    assert started["errors"] == [], (upload.filename, started)
    posted = space.client.post_upload(started["upload"], upload.content, upload.filename)
    assert posted.status_code in (200, 201, 204), (upload.filename, posted.text)
    return str(started["asset"]["id"])


def _complete(space: Space, asset_id: str) -> str:
    result = space.client.data(COMPLETE, {"i": {"assetId": asset_id}})["assetUploadComplete"]
    assert result["errors"] == [], result
    return str(result["job"]["id"])


def _follow_jobs(space: Space, job_ids: list[str], worker: ManagedProcess) -> dict[str, Any]:
    """Each job as the `job(id)` subscription last sent it: its final state."""

    async def one_socket(chunk: list[str], deadline: float) -> dict[str, Any]:
        found: dict[str, Any] = {}
        async with space.client.websocket() as ws:
            subscriptions = [(await ws.subscribe(JOB_DONE, {"id": job}), job) for job in chunk]
            for sub, job in subscriptions:
                while True:
                    try:
                        message = await ws.receive(sub, max(0.1, deadline - time.monotonic()))
                    except TimeoutError:
                        raise AssertionError(
                            f"job {job} not final after {JOB_TIMEOUT}s (last: {found.get(job)})"
                            f"\n--- worker log ---\n{worker.log_tail(40)}"
                        ) from None
                    if message["type"] == "complete":
                        break
                    assert message["type"] == "next", message
                    found[job] = message["payload"]["data"]["job"]
        return found

    async def all_sockets() -> dict[str, Any]:
        deadline = time.monotonic() + JOB_TIMEOUT
        chunks = [
            job_ids[i : i + SUBSCRIPTIONS_PER_SOCKET]
            for i in range(0, len(job_ids), SUBSCRIPTIONS_PER_SOCKET)
        ]
        found: dict[str, Any] = {}
        for part in await asyncio.gather(*(one_socket(chunk, deadline) for chunk in chunks)):
            found.update(part)
        return found

    return asyncio.run(all_sockets())


def _read_assets(space: Space, asset_ids: list[str]) -> list[dict[str, Any]]:
    return list(space.client.data(ASSETS, {"ids": asset_ids})["nodes"])


def _process(space: Space, uploads: dict[str, Upload], stack: Stack) -> dict[str, Outcome]:
    """Upload and complete every file (the worker starts while the next ones go up), follow
    the jobs to their end, then read the assets."""
    jobs: dict[str, tuple[str, str]] = {}
    for name, upload in uploads.items():
        asset_id = _start(space, upload)
        jobs[name] = (asset_id, _complete(space, asset_id))
    ended = _follow_jobs(space, [job for _, job in jobs.values()], stack.worker)
    assert {job["kind"] for job in ended.values()} == {"asset.process"}
    assets = _read_assets(space, [asset for asset, _ in jobs.values()])
    return {
        name: Outcome(asset=asset, job=ended[job])
        for (name, (_, job)), asset in zip(jobs.items(), assets, strict=True)
    }


def _presets(space: Space) -> dict[str, dict[str, Any]]:
    settings_ = space.client.data(MEDIA_SETTINGS, {"w": space.workspace_id})["workspace"]
    return {preset["name"]: preset for preset in settings_["mediaSettings"]["presets"]}


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _renditions(
    outcome: Outcome,
    presets: dict[str, dict[str, Any]],
    shown: tuple[int, int],
    *,
    vector: bool = False,
) -> dict[str, Image.Image]:
    """Every preset's rendition, downloaded from SeaweedFS through its presigned link and
    decoded: the preset's format, fitted inside its square, the picture's shape, never enlarged
    (a `vector` page is drawn at the size asked, so it fills the square)."""
    renditions = {r["preset"]: r for r in outcome.asset["renditions"]}
    assert set(renditions) == set(presets)
    images = {}
    for name, preset in presets.items():
        rendition = renditions[name]
        assert rendition["format"] == preset["format"].lower()
        data = download(rendition["url"])
        assert len(data) == rendition["size"]
        image = _decoded(data)
        assert image.format == PILLOW_FORMATS[rendition["format"]]
        assert image.size == (rendition["width"], rendition["height"])
        longest = preset["maxSide"] if vector else min(preset["maxSide"], max(shown))
        assert max(image.size) == longest, (name, image.size, shown)
        # The shape is kept, to the pixel the rounding may cost.
        assert abs(image.width * shown[1] - image.height * shown[0]) <= max(shown), (name, shown)
        images[name] = image
    return images


def _is_red(pixel: Any) -> bool:
    return bool(pixel[0] > 160 and pixel[1] < 100 and pixel[2] < 100)


def _asset_pk(asset_id: str) -> int:
    type_name, pk = base64.b64decode(asset_id).decode().split(":")
    assert type_name == "Asset"
    return int(pk)


def _bucket_keys(prefix: str) -> list[str]:
    """The bucket as S3 lists it, without Depot's storage layer in between."""
    options = settings.STORAGES["default"]["OPTIONS"]
    client = boto3.client(
        "s3",
        endpoint_url=options["endpoint_url"],
        aws_access_key_id=options["access_key"],
        aws_secret_access_key=options["secret_key"],
        region_name=options["region_name"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=settings.S3_BUCKET, Prefix=prefix
    ):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return sorted(keys)


def _pool_children(pid: int) -> set[int]:
    """The worker's pool processes (prefork children), from /proc."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError, ValueError):
            continue
        if int(ppid) == pid and state not in ("Z", "X"):
            children.add(int(stat.parent.name))
    return children


# --- the corpus ---------------------------------------------------------------------------


def _srgb_icc() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def _file(path: Path) -> bytes:
    return path.read_bytes()


def _camera_jpeg(files: Path) -> bytes:
    exif = corpus.exif_block(
        orientation=6,
        make="Canon",
        model="EOS R5",
        taken_at="2024:05:01 12:30:45",
        gps=PARIS,
    )
    path = files / "IMG_0001.JPG"
    corpus.save(
        corpus.photo(1280, 960),
        path,
        "JPEG",
        quality=90,
        exif=exif.tobytes(),
        icc_profile=_srgb_icc(),
    )
    return _file(path)


def _transparent_png(files: Path) -> bytes:
    image = corpus.photo(1200, 800).convert("RGBA")
    image.paste((0, 0, 0, 0), (600, 400, 1200, 800))  # the lower right quarter is clear
    return _file(corpus.save(image, files / "clear.png", "PNG"))


def _image_uploads(files: Path) -> dict[str, Upload]:
    heic_exif = corpus.exif_block(orientation=6, make="Apple", model="iPhone 15")
    return {
        "jpeg": Upload("IMG_0001.JPG", "image/jpeg", _camera_jpeg(files)),
        "png": Upload("clear.png", "image/png", _transparent_png(files)),
        "gif": Upload(
            "spinner.gif",
            "image/gif",
            _file(corpus.animated(files / "spinner.gif", "GIF", frames=4, size=400)),
        ),
        # Two that say nothing of what they are: the type is found from the bytes alone.
        "webp": Upload(
            "photo",
            "application/octet-stream",
            _file(corpus.save(corpus.photo(800, 600), files / "p.webp", "WEBP", quality=80)),
        ),
        "tiff": Upload(
            "print.tif",
            "image/tiff",
            _file(corpus.save(corpus.photo(1200, 800).convert("CMYK"), files / "p.tif", "TIFF")),
        ),
        "heic": Upload(
            "IMG_0002.HEIC",
            "image/heic",
            _file(
                corpus.save(
                    corpus.photo(640, 480), files / "p.heic", "HEIF", exif=heic_exif.tobytes()
                )
            ),
        ),
        "avif": Upload(
            "picture",
            "application/octet-stream",
            _file(corpus.save(corpus.photo(640, 480), files / "p.avif", "AVIF", speed=8)),
        ),
    }


def _other_uploads(files: Path) -> dict[str, Upload]:
    tags = {"title": "Blue in Green", "artist": "Miles Davis", "album": "Kind of Blue"}
    people = ["name,city,age", "Åsa,Malmö,31", '"Bob, Jr.",Paris,40', "Chen,Beijing,28"]
    return {
        "pdf": Upload(
            "report.pdf",
            "application/pdf",
            _file(
                corpus.pdf(
                    files / "report.pdf",
                    ["Quarterly results", "Second page", "Third page"],
                    title="Annual Report",
                    author="Ann Author",
                )
            ),
        ),
        "video": Upload(
            "clip.mp4",
            "video/mp4",
            _file(corpus.video(files / "clip.mp4", seconds=3, black_seconds=0.5)),
        ),
        "mp3": Upload(
            "song.mp3",
            "audio/mpeg",
            _file(corpus.audio(files / "song.mp3", "libmp3lame", seconds=2.0, tags=tags)),
        ),
        "m4a": Upload(
            "song.m4a",
            "audio/mp4",
            _file(
                corpus.audio(
                    files / "song.m4a", "aac", seconds=2.0, tags=tags, container_format="ipod"
                )
            ),
        ),
        "text": Upload(
            "notes.txt",
            "text/plain",
            "Smörgåsbord à la carte\nsecond line\nthird line\n".encode(),
        ),
        "csv": Upload("people.csv", "text/csv", corpus.lines(people).encode("cp1252")),
        "json": Upload(
            "data.json", "application/json", b'{"name": "Depot", "tags": [1, 2], "ok": true}'
        ),
    }


@pytest.fixture(scope="module")
def processed(stack: Stack) -> dict[str, Outcome]:
    """The good corpus, processed: every file in the default workspace, and the camera JPEG
    again in the workspace whose owner allowed GPS (through the API, before its upload)."""
    allowed = stack.geo.client.data(
        MEDIA_SETTINGS_UPDATE, {"i": {"workspaceId": stack.geo.workspace_id, "allowGps": True}}
    )["workspaceMediaSettingsUpdate"]
    assert allowed == {"mediaSettings": {"allowGps": True}, "errors": []}
    uploads = {**_image_uploads(stack.files), **_other_uploads(stack.files)}
    geo = {"geo-jpeg": uploads["jpeg"]}
    return {**_process(stack.media, uploads, stack), **_process(stack.geo, geo, stack)}


# --- images -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    content_type: str
    shown: tuple[int, int]  # as a viewer sees it: orientation applied
    facts: dict[str, Any]  # metadata that must be exactly so
    marker: tuple[str, str] | None = ("top", "left")  # where the red corner ends up


IMAGES = {
    "jpeg": Expected(
        "image/jpeg",
        (960, 1280),
        {
            "format": "jpeg",
            "orientation": 6,
            "animated": False,
            "frameCount": 1,
            "colorModel": "RGB",
            "iccProfile": "sRGB built-in",
            "exif": {"make": "Canon", "model": "EOS R5", "takenAt": "2024-05-01T12:30:45+02:00"},
        },
        marker=("top", "right"),  # stored sideways; orientation 6 turns it a quarter clockwise
    ),
    "png": Expected(
        "image/png",
        (1200, 800),
        {"format": "png", "animated": False, "hasAlpha": True, "mode": "RGBA", "orientation": 1},
    ),
    "gif": Expected(
        "image/gif",
        (400, 400),
        {"format": "gif", "animated": True, "frameCount": 4, "colorModel": "palette"},
        marker=None,  # one colour per frame: see the animation test
    ),
    "webp": Expected(
        "image/webp", (800, 600), {"format": "webp", "animated": False, "colorModel": "RGB"}
    ),
    "tiff": Expected(
        "image/tiff", (1200, 800), {"format": "tiff", "animated": False, "colorModel": "CMYK"}
    ),
    "heic": Expected(
        "image/heic",
        (480, 640),
        {
            "format": "heif",
            "orientation": 6,
            "animated": False,
            "exif": {"make": "Apple", "model": "iPhone 15"},
        },
        marker=("top", "right"),
    ),
    "avif": Expected(
        "image/avif", (640, 480), {"format": "avif", "animated": False, "colorModel": "RGB"}
    ),
}


def test_the_workspace_makes_the_default_presets(stack: Stack) -> None:
    presets = _presets(stack.media)
    assert set(presets) == DEFAULT_PRESETS
    assert {(p["maxSide"], p["format"]) for p in presets.values()} == {
        (256, "JPEG"),
        (1024, "JPEG"),
        (1024, "WEBP"),
    }


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_image_format_is_ready_with_its_facts_and_renditions(
    name: str, stack: Stack, processed: dict[str, Outcome]
) -> None:
    expected = IMAGES[name]
    outcome = processed[name]
    assert outcome.job["state"] == "SUCCEEDED", outcome.job
    assert outcome.asset["state"] == "READY", outcome.asset["failure"]
    assert outcome.asset["contentType"] == expected.content_type
    if name in ("webp", "avif"):
        assert outcome.asset["declaredContentType"] == "application/octet-stream"
    meta = outcome.meta
    assert (meta["kind"], meta["width"], meta["height"]) == ("image", *expected.shown)
    assert {key: meta.get(key) for key in expected.facts} == expected.facts
    assert "location" not in meta  # GPS is dropped by default (see the test below)

    images = _renditions(outcome, _presets(stack.media), expected.shown)
    if expected.marker is not None:
        # Upright and in sRGB colours: the red corner is where a viewer sees it.
        preview = images["preview-1024"].convert("RGB")
        x = preview.width - 4 if expected.marker[1] == "right" else 3
        assert _is_red(preview.getpixel((x, 3)))
        assert not _is_red(preview.getpixel((preview.width - 1 - x, 3)))


def test_an_animation_is_rendered_from_its_first_frame(processed: dict[str, Outcome]) -> None:
    [thumb] = [r for r in processed["gif"].asset["renditions"] if r["preset"] == "thumb-256"]
    image = _decoded(download(thumb["url"])).convert("RGB")
    assert _is_red(image.getpixel((10, 10)))  # frame 1 is red, frame 2 green


def test_transparency_is_flattened_in_jpeg_and_kept_in_webp(
    processed: dict[str, Outcome],
) -> None:
    renditions = {r["preset"]: r for r in processed["png"].asset["renditions"]}
    jpeg = _decoded(download(renditions["preview-1024"]["url"]))
    webp = _decoded(download(renditions["preview-1024-webp"]["url"]))
    clear = (jpeg.width - 10, jpeg.height - 10)
    assert jpeg.convert("RGB").getpixel(clear) == (255, 255, 255)
    assert webp.mode == "RGBA"
    pixel: Any = webp.getpixel(clear)
    assert pixel[3] == 0


def test_gps_is_dropped_by_default_and_kept_where_the_owner_allows_it(
    stack: Stack, processed: dict[str, Outcome]
) -> None:
    default = stack.media.client.data(MEDIA_SETTINGS, {"w": stack.media.workspace_id})
    assert default["workspace"]["mediaSettings"]["allowGps"] is False
    dropped, kept = processed["jpeg"], processed["geo-jpeg"]
    assert dropped.asset["sha256"] == kept.asset["sha256"]  # the same bytes in both
    assert not {"location", "gps"} & (set(dropped.meta) | set(dropped.meta["exif"]))

    assert kept.asset["state"] == "READY", kept.asset["failure"]
    location = kept.meta["location"]
    assert location["latitude"] == pytest.approx(PARIS[0], abs=1e-4)
    assert location["longitude"] == pytest.approx(PARIS[1], abs=1e-4)
    assert kept.meta["exif"] == dropped.meta["exif"]
    # Renditions never carry EXIF (a thumbnail must not say where a photo was taken).
    for rendition in kept.asset["renditions"]:
        assert not _decoded(download(rendition["url"])).getexif()


# --- documents, video, audio, text --------------------------------------------------------


def test_a_pdf_has_its_pages_info_text_and_first_page(
    stack: Stack, processed: dict[str, Outcome]
) -> None:
    outcome = processed["pdf"]
    assert outcome.asset["state"] == "READY", outcome.asset["failure"]
    assert outcome.asset["contentType"] == "application/pdf"
    meta = outcome.meta
    assert (meta["kind"], meta["pageCount"]) == ("pdf", 3)
    assert (meta["title"], meta["author"]) == ("Annual Report", "Ann Author")
    assert meta["textExcerpt"] == "Quarterly results Second page Third page"
    assert (meta["pageWidth"], meta["pageHeight"]) == (612, 792)
    # The first page, rendered at the size asked (vector pages are not "enlarged").
    images = _renditions(outcome, _presets(stack.media), (612, 792), vector=True)
    page = images["preview-1024"].convert("L")
    assert page.size == (792, 1024)
    assert page.crop((0, 0, 10, 10)).getextrema() == (255, 255)  # white paper
    darkest, _ = page.crop((90, 60, 500, 110)).getextrema()
    assert isinstance(darkest, int)
    assert darkest < 100  # the first page's heading


def test_a_video_has_its_facts_and_a_poster_frame(
    stack: Stack, processed: dict[str, Outcome]
) -> None:
    outcome = processed["video"]
    assert outcome.asset["state"] == "READY", outcome.asset["failure"]
    assert outcome.asset["contentType"] == "video/mp4"
    meta = outcome.meta
    assert meta["kind"] == "video"
    assert meta["duration"] == pytest.approx(3.0, abs=0.1)
    assert (meta["width"], meta["height"], meta["frameRate"]) == (320, 240, 25.0)
    assert (meta["videoCodec"], meta["audioCodec"], meta["audioChannels"]) == ("h264", "aac", 2)
    assert meta["tags"] == {"title": "Test clip"}
    images = _renditions(outcome, _presets(stack.media), (320, 240))
    # The poster is taken after the clip's black first half second.
    brightness = ImageStat.Stat(images["preview-1024"].convert("L")).mean[0]
    assert brightness > 40


@pytest.mark.parametrize(
    ("name", "content_type", "codec"), [("mp3", "audio/mpeg", "mp3"), ("m4a", "audio/mp4", "aac")]
)
def test_audio_has_duration_codec_bitrate_and_tags_and_no_renditions(
    name: str, content_type: str, codec: str, processed: dict[str, Outcome]
) -> None:
    outcome = processed[name]
    assert outcome.asset["state"] == "READY", outcome.asset["failure"]
    assert outcome.asset["contentType"] == content_type
    meta = outcome.meta
    assert (meta["kind"], meta["codec"], meta["channels"]) == ("audio", codec, 2)
    assert meta["duration"] == pytest.approx(2.0, abs=0.1)
    assert 32_000 <= meta["bitRate"] <= 320_000
    assert {key: meta["tags"].get(key) for key in ("title", "artist", "album")} == {
        "title": "Blue in Green",
        "artist": "Miles Davis",
        "album": "Kind of Blue",
    }
    assert meta["hasCover"] is False
    assert outcome.asset["renditions"] == []


def test_text_csv_and_json_have_their_encoding_and_shape(processed: dict[str, Outcome]) -> None:
    for name in ("text", "csv", "json"):
        assert processed[name].asset["state"] == "READY", processed[name].asset["failure"]
        assert processed[name].asset["renditions"] == []
        assert processed[name].meta["kind"] == "text"

    text = processed["text"]
    assert text.asset["contentType"] == "text/plain"
    assert (text.meta["encoding"], text.meta["lineCount"]) == ("utf-8", 3)
    assert text.meta["textExcerpt"].startswith("Smörgåsbord à la carte\nsecond line")

    table = processed["csv"]
    assert table.asset["contentType"] == "text/csv"
    assert (table.meta["encoding"], table.meta["lineCount"]) == ("cp1252", 4)
    assert (table.meta["columns"], table.meta["rowCount"], table.meta["columnCount"]) == (
        ["name", "city", "age"],
        3,
        3,
    )
    assert (table.meta["delimiter"], table.meta["hasHeader"]) == (",", True)

    data = processed["json"]
    assert data.asset["contentType"] == "application/json"
    assert (data.meta["encoding"], data.meta["lineCount"]) == ("ascii", 1)
    assert (data.meta["jsonType"], data.meta["keys"]) == ("object", ["name", "tags", "ok"])


# --- hostile files ------------------------------------------------------------------------


def test_hostile_files_fail_with_their_verdicts_and_the_worker_goes_on(stack: Stack) -> None:
    space = stack.media
    pool = _pool_children(stack.worker.pid)
    assert pool, "the worker's pool processes"

    # A zero-byte file never reaches the worker: the API refuses it before there is an asset.
    before = space.client.data(ASSET_COUNT, {"c": space.collection_id})["assets"]["totalCount"]
    empty = space.client.data(
        START,
        {
            "i": {
                "collectionId": space.collection_id,
                "filename": "empty.png",
                "contentType": "image/png",
                "size": 0,
            }
        },
    )["assetUploadStart"]
    assert (empty["asset"], empty["upload"]) == (None, None)
    assert [error["code"] for error in empty["errors"]] == ["INVALID_UPLOAD"]
    after = space.client.data(ASSET_COUNT, {"c": space.collection_id})["assets"]["totalCount"]
    assert after == before

    png = media.png(300, 200)
    hostile = {
        "html posing as a PNG": (
            Upload("cat.png", "image/png", corpus.HTML_PAGE),
            "ACTIVE_CONTENT",
        ),
        "SVG with a script": (
            Upload("logo.svg", "image/svg+xml", corpus.SVG_SCRIPT),
            "ACTIVE_CONTENT",
        ),
        "declared JPEG, bytes PNG": (
            Upload("photo.png", "image/jpeg", png),
            "CONTENT_TYPE_MISMATCH",
        ),
        "extension .jpg, bytes PNG": (
            Upload("photo.jpg", "image/png", png),
            "CONTENT_TYPE_MISMATCH",
        ),
        "decompression bomb": (
            Upload("huge.png", "image/png", _file(corpus.png_bomb(stack.files / "bomb.png"))),
            "IMAGE_TOO_LARGE",
        ),
        "truncated JPEG": (
            Upload("cut.jpg", "image/jpeg", media.truncated(media.jpeg(800, 600))),
            "CORRUPT_FILE",
        ),
    }
    assert len(hostile["decompression bomb"][0].content) < 10_000  # a few KB claiming 400 MP
    outcomes = _process(space, {name: upload for name, (upload, _) in hostile.items()}, stack)
    for name, (_, verdict) in hostile.items():
        outcome = outcomes[name]
        assert outcome.asset["state"] == "FAILED", (name, outcome.asset)
        assert outcome.asset["failure"]["code"] == verdict, (name, outcome.asset["failure"])
        assert outcome.job["state"] == "FAILED", (name, outcome.job)
        assert outcome.job["error"]["code"] == verdict, (name, outcome.job)
        assert outcome.job["attempts"] == 1, (name, outcome.job)
        assert outcome.asset["renditions"] == [], name

    # The same worker, with the same pool processes, goes on to the next file.
    good = Upload("after.png", "image/png", media.png(640, 480, mode="RGB"))
    [outcome] = _process(space, {"good": good}, stack).values()
    assert outcome.asset["state"] == "READY", outcome.asset["failure"]
    assert (outcome.job["state"], outcome.job["attempts"]) == ("SUCCEEDED", 1)
    assert len(outcome.asset["renditions"]) == len(DEFAULT_PRESETS)
    assert stack.worker.running
    assert _pool_children(stack.worker.pid) == pool
    log = stack.worker.log_tail(100_000)
    assert "WorkerLostError" not in log
    assert "exited with" not in log  # billiard's line for a pool process that died


def test_a_file_refused_as_active_content_is_never_served_as_such(stack: Stack) -> None:
    space = stack.media
    # A declared type a browser would run is refused at the start: nothing is ever stored.
    html = _start_asset(space, Upload("page.html", "text/html", corpus.HTML_PAGE))
    assert [error["code"] for error in html["errors"]] == ["ACTIVE_CONTENT"]
    assert html["asset"] is None
    # An SVG is accepted at the start; the script in its bytes fails it, and its bytes go.
    svg = Upload("logo.svg", "image/svg+xml", corpus.SVG_ONLOAD)
    asset_id = _start(space, svg)
    _follow_jobs(space, [_complete(space, asset_id)], stack.worker)
    [asset] = _read_assets(space, [asset_id])
    assert asset["failure"]["code"] == "ACTIVE_CONTENT", asset
    assert asset["downloadUrl"] is None
    assert _bucket_keys(f"{space.pk}/{_asset_pk(asset_id)}/") == []


# --- deletion -----------------------------------------------------------------------------


def test_deleting_an_asset_removes_its_original_and_renditions_from_storage(
    stack: Stack,
) -> None:
    space = stack.media
    upload = Upload("to-delete.jpg", "image/jpeg", media.jpeg(900, 600))
    [outcome] = _process(space, {"doomed": upload}, stack).values()
    assert outcome.asset["state"] == "READY", outcome.asset["failure"]
    prefix = f"{space.pk}/{_asset_pk(outcome.asset['id'])}/"
    stored = _bucket_keys(prefix)
    renditions = sorted(
        f"{prefix}renditions/{r['preset']}.{r['format']}" for r in outcome.asset["renditions"]
    )
    assert len(renditions) == len(DEFAULT_PRESETS)
    [original] = [key for key in stored if key not in renditions]
    assert stored == sorted([original, *renditions])
    assert download(outcome.asset["downloadUrl"]) == upload.content
    links = [outcome.asset["downloadUrl"], *(r["url"] for r in outcome.asset["renditions"])]

    deleted = space.client.data(DELETE, {"i": {"id": outcome.asset["id"]}})["assetDelete"]
    assert deleted["errors"] == [], deleted
    job = _follow_jobs(space, [deleted["job"]["id"]], stack.worker)[deleted["job"]["id"]]
    assert (job["kind"], job["state"]) == ("asset.delete", "SUCCEEDED")

    assert _bucket_keys(prefix) == []
    assert _read_assets(space, [outcome.asset["id"]]) == [None]
    for link in links:  # presigned links handed out before now lead nowhere
        assert space.client.http.get(link).status_code == 404

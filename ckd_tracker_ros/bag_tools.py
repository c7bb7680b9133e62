"""rosbag2 tools: a benchmark sequence -> an MCAP bag, and reading such bags back.

    from ckd_tracker_ros.bag_tools import from_sequence, read_index, play, eval_bag
    from_sequence("data/vtuav/test_ST/seq0", "bags/seq0")        # needs only `rosbags`
    play("bags/seq0", lockstep=True, node="/ckd_tracker")        # needs rclpy (bag_play.py)
    eval_bag("bags/seq0", out_dir="eval_out")                    # needs rclpy (bag_eval.py)

Writing and reading use `rosbags` (pure Python, no ROS installation); this module imports no
rclpy, so `ckd bag from-sequence` works without the ROS environment. `play` and `eval_bag`
are thin wrappers that import the rclpy modules when called.

Bag layout (`from_sequence`; rosbag2 format version 8, which Humble's reader accepts with
its QoS profiles; MCAP by default (Humble reads it with ros-humble-rosbag2-storage-mcap),
sqlite3 on request):

| topic                             | type                          | QoS offered          |
|-----------------------------------|-------------------------------|----------------------|
| /camera/rgb/image_raw             | sensor_msgs/msg/Image rgb8    | sensor data (best effort, keep last 5, volatile) |
| /camera/thermal/image_raw         | sensor_msgs/msg/Image mono8 (a single-channel or grey 8-bit source), rgb8 (a colour-mapped one) or mono16 (16-bit radiometric counts, unchanged) | sensor data |
| /ground_truth/rgb                 | vision_msgs/msg/Detection2D   | reliable, keep last 10, volatile |
| /ground_truth/thermal             | vision_msgs/msg/Detection2D   | reliable, keep last 10, volatile |

With `compressed=True` the image topics are `<topic>/compressed` (sensor_msgs/CompressedImage,
image_transport's format strings such as "rgb8; jpeg compressed bgr8"): the sequence's own
JPEG/PNG bytes, unchanged, so the decoded pixels equal what the offline readers see.

- Header stamps: frame k of the RGB camera at `start_ns + round(k * 1e9 / rate_hz)`; the
  thermal image of frame k at the RGB stamp + `thermal_offset_s` + a jitter drawn uniformly
  from [-jitter_s, +jitter_s] (numpy generator seeded with `seed`: the same bag every time).
  The bag's receive (log) time of every message is its header stamp; messages are written
  in log-time order. frame_id: `camera_rgb_optical_frame` / `camera_thermal_optical_frame`.
- Ground truth: one Detection2D per annotated frame and camera, with that camera's image
  header (stamp and frame_id): bbox.center.position = box centre (x + w/2, y + h/2), size_x /
  size_y = w / h, theta 0, results empty, id = the sequence name. Every frame for densely
  annotated datasets; only frames 0, 10, 20, ... for VTUAV (what its toolkit scores). An
  out-of-view row (0 0 0 0) is a Detection2D of size 0 at (0, 0). `ros2 bag play` replays
  these topics like any other (remap one to the node's ~/init_box to initialise from it).
  The vision_msgs definitions stored in the bag are those of our .msg files (the stand-in,
  identical to vision_msgs 4.x), registered in the rosbags typestore.
- metadata.yaml custom_data (shown by `ros2 bag info`): ckd.dataset, ckd.sequence,
  ckd.frames, ckd.gt_frame_step, ckd.rate_hz, ckd.thermal_offset_s, ckd.jitter_s, ckd.seed,
  ckd.source, ckd.thermal_encoding.

Reading (`read_index`, `iter_pairs`, `decode_image`): a bag written by `from_sequence` or
recorded from cameras. Image pairs: in a bag written by `from_sequence`, the k-th messages of
the two topics (frame k, whatever the offset); in other bags each RGB message with the thermal
message nearest in stamp (the RGB image is the reference, as the node's default).
"""

from __future__ import annotations

import heapq
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import cv2
import numpy as np

RGB_TOPIC = "/camera/rgb/image_raw"
THERMAL_TOPIC = "/camera/thermal/image_raw"
GT_TOPICS = ("/ground_truth/rgb", "/ground_truth/thermal")
FRAME_IDS = ("camera_rgb_optical_frame", "camera_thermal_optical_frame")
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
GT_TYPE = "vision_msgs/msg/Detection2D"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
BAG_VERSION = 8  # Humble's rosbag2 reads version 8 metadata (QoS profiles) correctly
STORAGES = ("mcap", "sqlite3")
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000  # 2023-11-14T22:13:20Z: fixed, reproducible
SENSOR_QOS_DEPTH = 5
GT_QOS_DEPTH = 10
CUSTOM_PREFIX = "ckd."

# The vision_msgs .msg files: the stand-in in this repository (identical to vision_msgs 4.x).
STANDIN_MSG_DIR = Path(__file__).resolve().parents[1] / "ros" / "vision_msgs_standin" / "msg"


class BagError(ValueError):
    """A bag or a sequence cannot be converted / read; the message says what to do."""


# ---------------------------------------------------------------------------------------------
# Types and QoS
# ---------------------------------------------------------------------------------------------

def vision_msgs_dir() -> Path:
    """Where the vision_msgs .msg definitions are: this repository's stand-in, else the
    share/vision_msgs/msg folder of an installed vision_msgs (AMENT_PREFIX_PATH)."""
    if STANDIN_MSG_DIR.is_dir():
        return STANDIN_MSG_DIR
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / "vision_msgs" / "msg"
        if prefix and (candidate / "Detection2D.msg").is_file():
            return candidate
    raise BagError(f"vision_msgs message definitions not found ({STANDIN_MSG_DIR} is missing "
                   "and no vision_msgs package is on AMENT_PREFIX_PATH)")


def bag_typestore():
    """A rosbags typestore with ROS 2 Kilted's standard types (sensor_msgs, std_msgs and
    geometry_msgs are identical in Humble and Jazzy) plus vision_msgs from our .msg files."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for path in sorted(vision_msgs_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"vision_msgs/msg/{path.stem}"))
    store.register(types)
    return store


def _qos(reliable: bool, depth: int):
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)
    zero = QosTime(0, 0)
    return Qos(history=QosHistory.KEEP_LAST, depth=depth,
               reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               durability=QosDurability.VOLATILE, deadline=zero, lifespan=zero,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=zero,
               avoid_ros_namespace_conventions=False)


# ---------------------------------------------------------------------------------------------
# Sequence -> bag
# ---------------------------------------------------------------------------------------------

def detect_dataset(seq_dir: str | Path) -> str:
    """The dataset layout of a sequence folder, from its folders, frame names and GT files."""
    d = Path(seq_dir)
    if not d.is_dir():
        raise BagError(f"sequence folder {d} does not exist")
    if (d / "rgb").is_dir() and (d / "ir").is_dir():
        return "vtuav"
    if (d / "v").is_dir() and (d / "i").is_dir():
        return "gtot"
    if (d / "rgb").is_dir() and (d / "thermal").is_dir():
        return "generic"
    if (d / "visible").is_dir() and (d / "infrared").is_dir():
        first = min((p.name for p in (d / "visible").iterdir()), default="")
        if first[:1].lower() == "v":  # LasHeR: v000000.jpg; RGBT234/210: 00001v.jpg
            return "lasher"
        return "rgbt234" if (d / "infrared.txt").is_file() else "rgbt210"
    raise BagError(f"{d}: cannot tell the dataset layout (expected rgb/+ir/ (vtuav), "
                   "visible/+infrared/ (lasher, rgbt234, rgbt210), v/+i/ (gtot) or "
                   "rgb/+thermal/ (generic)); pass the dataset explicitly")


def frame_stamps(n: int, rate_hz: float, thermal_offset_s: float, jitter_s: float,
                 seed: int, start_ns: int = DEFAULT_START_NS) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, thermal) header stamps of n frames, int64 nanoseconds (see the module doc)."""
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise BagError(f"rate {rate_hz} Hz: expected a positive number")
    if not math.isfinite(thermal_offset_s):
        raise BagError(f"thermal offset {thermal_offset_s} s: expected a finite number")
    if not (math.isfinite(jitter_s) and jitter_s >= 0):
        raise BagError(f"jitter {jitter_s} s: expected a number >= 0")
    k = np.arange(n, dtype=np.float64)
    rgb = start_ns + np.round(k * 1e9 / rate_hz).astype(np.int64)
    jitter = np.random.default_rng(seed).uniform(-jitter_s, jitter_s, n) if jitter_s else \
        np.zeros(n)
    thermal = rgb + np.round((thermal_offset_s + jitter) * 1e9).astype(np.int64)
    if n and thermal.min() < 0:
        raise BagError("the thermal offset puts stamps before 1970; use a smaller offset")
    return rgb, thermal


def _time(store, ns: int):
    return store.types["builtin_interfaces/msg/Time"](sec=int(ns // 1_000_000_000),
                                                      nanosec=int(ns % 1_000_000_000))


def _header(store, ns: int, frame_id: str):
    return store.types["std_msgs/msg/Header"](stamp=_time(store, ns), frame_id=frame_id)


def _image_msg(store, header, array: np.ndarray, encoding: str):
    dtype = np.dtype("<u2") if encoding == "mono16" else np.dtype(np.uint8)
    data = np.ascontiguousarray(array, dtype=dtype)
    h, w = data.shape[:2]
    return store.types[IMAGE_TYPE](
        header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
        step=w * (1 if data.ndim == 2 else data.shape[2]) * dtype.itemsize,
        data=data.reshape(-1).view(np.uint8))


def _compressed_msg(store, header, path: Path):
    """The file's own bytes when it is JPEG or PNG (else re-encoded as lossless PNG), with
    image_transport's format string "<encoding>; <jpeg|png> compressed <encoding>"."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise BagError(f"{path}: cannot read the image")
    if image.ndim == 2:
        enc = "mono16" if image.dtype == np.uint16 else "mono8"
    else:
        enc = "bgra8" if image.shape[2] == 4 else "bgr8"
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg", ".png"):
        data = np.frombuffer(path.read_bytes(), np.uint8)
        kind = "png" if suffix == ".png" else "jpeg"
    else:
        ok, buf = cv2.imencode(".png", image)
        if not ok:
            raise BagError(f"{path}: cannot re-encode the image as PNG")
        data, kind = buf.reshape(-1), "png"
    ros_enc = {"bgr8": "rgb8", "bgra8": "rgba8"}.get(enc, enc)  # what the camera published
    return store.types[COMPRESSED_TYPE](header=header, format=f"{ros_enc}; {kind} compressed "
                                        f"{enc}", data=data)


def _thermal_raw(seq, i: int) -> tuple[np.ndarray, str]:
    """Thermal frame i for a raw Image: 16-bit files as mono16 counts (unchanged), 8-bit as
    mono8 when its three channels are equal (grey), rgb8 otherwise (colour-mapped)."""
    path = seq.thermal_frames[i]
    if path.suffix.lower() in (".png", ".tif", ".tiff"):
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is not None and raw.dtype == np.uint16:
            if raw.ndim != 2:
                raise BagError(f"{path}: 16-bit thermal image with {raw.shape[2]} channels; "
                               "expected one")
            return raw, "mono16"
    th = seq.thermal(i)  # (H, W, 3) uint8, exactly what the offline tracker reads
    if np.array_equal(th[:, :, 0], th[:, :, 1]) and np.array_equal(th[:, :, 0], th[:, :, 2]):
        return th[:, :, 0], "mono8"
    return th, "rgb8"


def _gt_msg(store, header, box, name: str):
    x, y, w, h = (float(v) for v in box)
    vm = store.types
    pose = vm["vision_msgs/msg/Pose2D"](
        position=vm["vision_msgs/msg/Point2D"](x=x + 0.5 * w, y=y + 0.5 * h), theta=0.0)
    return vm[GT_TYPE](header=header, results=[], bbox=vm["vision_msgs/msg/BoundingBox2D"](
        center=pose, size_x=w, size_y=h), id=name)


def from_sequence(seq_dir: str | Path, out_bag: str | Path, dataset: str | None = None, *,
                  rate_hz: float = 30.0, thermal_offset_s: float = 0.0, jitter_s: float = 0.0,
                  seed: int = 0, storage: str = "mcap", compressed: bool = False,
                  max_frames: int | None = None, start_ns: int = DEFAULT_START_NS,
                  progress: bool | Callable[[int], None] = True) -> Path:
    """Write one benchmark sequence as a rosbag2 bag (layout in the module docstring).

    dataset: one of ckd_core.data.sequences.DATASETS, or None to detect it from the folder.
    out_bag: the bag folder to create (must not exist). max_frames: only the first frames.
    progress: True = a tqdm bar on stderr, False = none, or a callable(n_frames_done_since).
    Returns the bag folder. Raises BagError (or SequenceError) naming what is wrong.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    from ckd_core.data.sequences import open_sequence

    if storage not in STORAGES:
        raise BagError(f"storage '{storage}': expected one of {', '.join(STORAGES)}")
    out_bag = Path(out_bag)
    if out_bag.exists():
        raise BagError(f"{out_bag} exists already; choose a new bag folder (rosbag2 never "
                       "writes into an existing one)")
    dataset = dataset or detect_dataset(seq_dir)
    seq = open_sequence(dataset, seq_dir)
    n = seq.num_frames if max_frames is None else min(seq.num_frames, int(max_frames))
    if n < 1:
        raise BagError(f"max_frames {max_frames}: expected at least 1 frame")
    rgb_ns, th_ns = frame_stamps(n, rate_hz, thermal_offset_s, jitter_s, seed, start_ns)
    gt_ids = np.arange(len(seq.gt_rgb)) * seq.gt_frame_step  # sparse GT as written
    keep = gt_ids < n
    gt_rows = {int(f): (seq.gt_rgb[j], seq.gt_thermal[j]) for j, f in enumerate(gt_ids[keep])}

    store = bag_typestore()
    sensor_qos, gt_qos = [_qos(False, SENSOR_QOS_DEPTH)], [_qos(True, GT_QOS_DEPTH)]
    img_type = COMPRESSED_TYPE if compressed else IMAGE_TYPE
    suffix = "/compressed" if compressed else ""
    writer = Writer(out_bag, version=BAG_VERSION,
                    storage_plugin=StoragePlugin.MCAP if storage == "mcap"
                    else StoragePlugin.SQLITE3)
    thermal_encodings: set[str] = set()
    bar, report = _progress(progress, n)
    writer.open()
    try:
        conns = [writer.add_connection(t + suffix, img_type, typestore=store,
                                       offered_qos_profiles=sensor_qos)
                 for t in (RGB_TOPIC, THERMAL_TOPIC)]
        gt_conns = [writer.add_connection(t, GT_TYPE, typestore=store,
                                          offered_qos_profiles=gt_qos) for t in GT_TOPICS]
        # Messages are written in log-time order: a thermal offset or jitter can put a thermal
        # image after the next RGB one, so they wait in a heap until nothing earlier can come.
        pending: list[tuple[int, int, Any, bytes]] = []
        order = 0
        lag_ns = int(round((abs(thermal_offset_s) + jitter_s) * 1e9)) + 1
        for k in range(n):
            headers = [_header(store, int(s), f) for s, f in zip((rgb_ns[k], th_ns[k]),
                                                                 FRAME_IDS)]
            if compressed:
                msgs = [_compressed_msg(store, headers[0], seq.rgb_frames[k]),
                        _compressed_msg(store, headers[1], seq.thermal_frames[k])]
                thermal_encodings.add(msgs[1].format.split(";")[0])
            else:
                rgb = _read_rgb(seq, k)
                th, enc = _thermal_raw(seq, k)
                thermal_encodings.add(enc)
                msgs = [_image_msg(store, headers[0], rgb, "rgb8"),
                        _image_msg(store, headers[1], th, enc)]
            out = [(int(rgb_ns[k]), conns[0], msgs[0], img_type),
                   (int(th_ns[k]), conns[1], msgs[1], img_type)]
            if k in gt_rows:
                for c, (stamp, box, hdr) in enumerate(zip((rgb_ns[k], th_ns[k]), gt_rows[k],
                                                          headers)):
                    out.append((int(stamp), gt_conns[c], _gt_msg(store, hdr, box, seq.name),
                                GT_TYPE))
            for stamp, conn, msg, typ in out:
                heapq.heappush(pending, (stamp, order, conn, bytes(store.serialize_cdr(msg,
                                                                                       typ))))
                order += 1
            safe = int(rgb_ns[k + 1]) - lag_ns if k + 1 < n else None
            while pending and (safe is None or pending[0][0] < safe):
                stamp, _, conn, data = heapq.heappop(pending)
                writer.write(conn, stamp, data)
            report(1)
        for key, value in {
                "dataset": dataset, "sequence": seq.name, "frames": n,
                "gt_frame_step": seq.gt_frame_step, "rate_hz": rate_hz,
                "thermal_offset_s": thermal_offset_s, "jitter_s": jitter_s, "seed": seed,
                "source": str(Path(seq_dir).resolve()),
                "thermal_encoding": ",".join(sorted(thermal_encodings))}.items():
            writer.set_custom_data(CUSTOM_PREFIX + key, str(value))
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    writer.close()
    return out_bag


def _read_rgb(seq, k: int) -> np.ndarray:
    """RGB frame k read as Sequence.frame reads it ((H, W, 3) uint8 RGB), without also
    reading the thermal frame."""
    image = cv2.imread(str(seq.rgb_frames[k]), cv2.IMREAD_COLOR)
    if image is None:
        raise BagError(f"{seq.rgb_frames[k]}: cannot read the image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _progress(progress, total: int):
    """(bar or None, report(n)) for `progress` as from_sequence takes it."""
    if callable(progress):
        return None, progress
    if not progress:
        return None, lambda n: None
    from tqdm import tqdm
    bar = tqdm(total=total, unit="frame", desc="bag", leave=False)
    return bar, bar.update


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def header_stamp_ns(raw: bytes | memoryview) -> int:
    """The header stamp (ns) of a CDR-serialised message whose first field is a
    std_msgs/Header (Image, CompressedImage, Detection2D, ...), without deserialising it:
    4 bytes of encapsulation, then int32 sec and uint32 nanosec."""
    if len(raw) < 12:
        raise BagError(f"message of {len(raw)} bytes is too short for a header")
    endian = "<" if raw[1] in (1, 3) else ">"  # CDR_LE / PL_CDR_LE vs big-endian
    sec, nsec = struct.unpack_from(endian + "iI", raw, 4)
    return sec * 1_000_000_000 + nsec


@dataclass(frozen=True)
class GroundTruthTrack:
    """Ground truth read from a bag: frame ids (K,) and (K, 4) xywh boxes per camera."""

    frame_ids: np.ndarray
    rgb: np.ndarray
    thermal: np.ndarray


@dataclass(frozen=True)
class BagIndex:
    """What a bag holds, without its pixels.

    topics: {name: (type, message count)}. custom: metadata.yaml custom_data without the
    `ckd.` prefix. rgb_stamps (N,), thermal_stamps (M,): header stamps (ns) in log order.
    pairs (N,): for each RGB message, the index of its thermal message (module docstring).
    gt: ground truth (None when the bag has no /ground_truth topics).
    """

    path: Path
    storage: str
    topics: dict[str, tuple[str, int]]
    custom: dict[str, str]
    rgb_topic: str
    thermal_topic: str
    rgb_stamps: np.ndarray
    thermal_stamps: np.ndarray
    pairs: np.ndarray
    gt: GroundTruthTrack | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.rgb_stamps)

    @property
    def compressed(self) -> tuple[bool, bool]:
        return tuple(self.topics[t][0] == COMPRESSED_TYPE  # type: ignore[return-value]
                     for t in (self.rgb_topic, self.thermal_topic))

    @property
    def dataset(self) -> str | None:
        return self.custom.get("dataset")

    @property
    def sequence(self) -> str:
        return self.custom.get("sequence") or self.path.name

    def pair_spread_s(self) -> float:
        """Largest |rgb stamp - thermal stamp| over the pairs, seconds."""
        if not len(self.pairs):
            return 0.0
        return float(np.abs(self.rgb_stamps - self.thermal_stamps[self.pairs]).max()) / 1e9

    def summary(self) -> str:
        lines = [f"bag {self.path} ({self.storage}), {self.num_frames} RGB frames"]
        for name, (typ, count) in sorted(self.topics.items()):
            lines.append(f"  {name:<40} {typ:<34} {count:>7} msgs")
        if self.custom:
            lines.append("  " + ", ".join(f"{k}={v}" for k, v in sorted(self.custom.items())))
        return "\n".join(lines)


def _open_reader(path: str | Path):
    from rosbags.rosbag2 import Reader
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    reader = Reader(path)
    reader.open()
    return reader


def _pick_topic(topics: Mapping[str, tuple[str, int]], wanted: str | None, defaults,
                words: tuple[str, ...], what: str) -> str:
    images = {t for t, (typ, _) in topics.items() if typ in IMAGE_TYPES}
    if wanted:
        if wanted not in images:
            raise BagError(f"{what} topic {wanted} is not an image topic of this bag; image "
                           f"topics: {', '.join(sorted(images)) or 'none'}")
        return wanted
    for t in defaults:
        if t in images:
            return t
    hits = sorted(t for t in images if any(w in t.lower() for w in words))
    if len(hits) == 1:
        return hits[0]
    raise BagError(f"cannot tell which image topic is the {what} camera (image topics: "
                   f"{', '.join(sorted(images)) or 'none'}); name it explicitly")


def nearest(sorted_stamps: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Index into `sorted_stamps` (ascending) of the value nearest to each of `stamps`."""
    if len(sorted_stamps) == 0:
        raise BagError("no messages to pair with")
    right = np.clip(np.searchsorted(sorted_stamps, stamps), 1, len(sorted_stamps) - 1)
    left = right - 1
    if len(sorted_stamps) == 1:
        return np.zeros(len(stamps), dtype=np.int64)
    pick_left = np.abs(stamps - sorted_stamps[left]) <= np.abs(sorted_stamps[right] - stamps)
    return np.where(pick_left, left, right).astype(np.int64)


def read_index(bag: str | Path, rgb_topic: str | None = None,
               thermal_topic: str | None = None) -> BagIndex:
    """Index a bag: topics, stamps, pairs and ground truth (one pass, pixels not kept)."""
    reader = _open_reader(bag)
    try:
        topics = {name: (info.msgtype or "?", info.msgcount)
                  for name, info in reader.topics.items()}
        meta = getattr(reader.storage, "metadata", None)
        custom = {k[len(CUSTOM_PREFIX):] if k.startswith(CUSTOM_PREFIX) else k: str(v)
                  for k, v in ((getattr(meta, "custom", None) or {}).items())}
        p = Path(bag)
        storage = "mcap" if p.suffix == ".mcap" or any(p.glob("*.mcap")) else "sqlite3"
        rgb_t = _pick_topic(topics, rgb_topic, (RGB_TOPIC, RGB_TOPIC + "/compressed"),
                            ("rgb", "color", "colour", "visible"), "RGB")
        th_t = _pick_topic(topics, thermal_topic,
                           (THERMAL_TOPIC, THERMAL_TOPIC + "/compressed"),
                           ("thermal", "infrared", "lwir", "/ir"), "thermal")
        stamps: dict[str, list[int]] = {rgb_t: [], th_t: []}
        gt_msgs: dict[str, list] = {t: [] for t in GT_TOPICS}
        store = None
        conns = [c for c in reader.connections if c.topic in stamps or c.topic in gt_msgs]
        for conn, _, raw in reader.messages(connections=conns):
            if conn.topic in stamps:
                stamps[conn.topic].append(header_stamp_ns(raw))
            elif conn.msgtype == GT_TYPE:
                store = store or bag_typestore()
                gt_msgs[conn.topic].append(store.deserialize_cdr(raw, GT_TYPE))
    finally:
        reader.close()
    rgb_ns = np.asarray(stamps[rgb_t], dtype=np.int64)
    th_ns = np.asarray(stamps[th_t], dtype=np.int64)
    if len(rgb_ns) == 0 or len(th_ns) == 0:
        raise BagError(f"{bag}: no messages on {rgb_t if len(rgb_ns) == 0 else th_t}")
    if "frames" in custom and len(rgb_ns) == len(th_ns):
        pairs = np.arange(len(rgb_ns))  # written by from_sequence: message k = frame k
    else:
        order = np.argsort(th_ns, kind="stable")
        pairs = order[nearest(th_ns[order], rgb_ns)]
    gt = _ground_truth(gt_msgs, rgb_ns, th_ns, pairs, bag)
    return BagIndex(Path(bag), storage, topics, custom, rgb_t, th_t, rgb_ns, th_ns, pairs, gt)


def box_of(det) -> tuple[float, float, float, float]:
    """Detection2D (centre + size) -> (x, y, w, h) with (x, y) the top-left corner."""
    w, h = float(det.bbox.size_x), float(det.bbox.size_y)
    return (float(det.bbox.center.position.x) - 0.5 * w,
            float(det.bbox.center.position.y) - 0.5 * h, w, h)


def _ground_truth(gt_msgs, rgb_ns, th_ns, pairs, bag) -> GroundTruthTrack | None:
    """Match GT messages to frames by stamp: RGB GT to RGB stamps, thermal GT to the thermal
    stamp of the same frame's pair."""
    if not gt_msgs[GT_TOPICS[0]]:
        return None
    rgb_index = {int(s): i for i, s in enumerate(rgb_ns)}
    th_to_frame = {int(th_ns[p]): i for i, p in enumerate(pairs)}
    per_topic = []
    for topic, lookup in zip(GT_TOPICS, (rgb_index, th_to_frame)):
        rows = {}
        for det in gt_msgs[topic]:
            s = det.header.stamp.sec * 1_000_000_000 + det.header.stamp.nanosec
            if s not in lookup:
                raise BagError(f"{bag}: {topic} message stamped {s / 1e9:.9f} matches no "
                               "image stamp of its camera")
            rows[lookup[s]] = box_of(det)
        per_topic.append(rows)
    rgb_rows, th_rows = per_topic
    if not th_rows:
        th_rows = rgb_rows  # one GT for both cameras
    if set(rgb_rows) != set(th_rows):
        raise BagError(f"{bag}: {GT_TOPICS[0]} and {GT_TOPICS[1]} annotate different frames")
    ids = np.array(sorted(rgb_rows), dtype=np.int64)
    return GroundTruthTrack(ids, np.array([rgb_rows[i] for i in ids], dtype=np.float64),
                            np.array([th_rows[i] for i in ids], dtype=np.float64))


@dataclass(frozen=True)
class RawPair:
    """Frame `index`: the RGB and thermal messages as serialised in the bag (CDR)."""

    index: int
    rgb_stamp_ns: int
    thermal_stamp_ns: int
    rgb: bytes
    thermal: bytes


def iter_pairs(index: BagIndex, start: int = 0, stop: int | None = None) -> Iterator[RawPair]:
    """The image pairs of an indexed bag in frame order, streamed (only the messages still
    waiting for their partner are held in memory)."""
    stop = index.num_frames if stop is None else min(stop, index.num_frames)
    want_th: dict[int, list[int]] = {}
    for i in range(start, stop):
        want_th.setdefault(int(index.pairs[i]), []).append(i)
    reader = _open_reader(index.path)
    rgb_seen = th_seen = 0
    held_rgb: dict[int, bytes] = {}
    held_th: dict[int, bytes] = {}
    nxt = start
    try:
        conns = [c for c in reader.connections
                 if c.topic in (index.rgb_topic, index.thermal_topic)]
        for conn, _, raw in reader.messages(connections=conns):
            if conn.topic == index.rgb_topic:
                if start <= rgb_seen < stop:
                    held_rgb[rgb_seen] = bytes(raw)
                rgb_seen += 1
            else:
                for i in want_th.get(th_seen, ()):
                    held_th[i] = bytes(raw)
                th_seen += 1
            while nxt < stop and nxt in held_rgb and nxt in held_th:
                yield RawPair(nxt, int(index.rgb_stamps[nxt]),
                              int(index.thermal_stamps[index.pairs[nxt]]),
                              held_rgb.pop(nxt), held_th.pop(nxt))
                nxt += 1
            if nxt >= stop:
                return
    finally:
        reader.close()
    if nxt < stop:
        raise BagError(f"{index.path}: frame {nxt} is incomplete (the bag changed since it "
                       "was indexed?)")


def decode_image(raw: bytes, msgtype: str, normalizer=None) -> np.ndarray:
    """A serialised Image / CompressedImage -> (H, W, 3) uint8 RGB, converted exactly as the
    node converts it (ckd_tracker_ros.images). 16-bit data needs a ThermalNormalizer."""
    from ckd_tracker_ros.images import ThermalNormalizer, message_to_numpy, to_rgb8
    store = _deserializer()
    msg = store.deserialize_cdr(raw, msgtype)
    array, encoding = message_to_numpy(msg)
    if array.dtype != np.uint8 and normalizer is None:
        normalizer = ThermalNormalizer()
    return to_rgb8(array, encoding, normalizer)


_STORE = None


def _deserializer():
    global _STORE
    if _STORE is None:
        _STORE = bag_typestore()
    return _STORE


# ---------------------------------------------------------------------------------------------
# The rclpy side (imported when used)
# ---------------------------------------------------------------------------------------------

def play(bag: str | Path, **kwargs):
    """Publish a bag's image pairs into a running graph; see ckd_tracker_ros.bag_play.play."""
    from ckd_tracker_ros.bag_play import play as _play
    return _play(bag, **kwargs)


def eval_bag(bag: str | Path, **kwargs):
    """Evaluate the node on a bag; see ckd_tracker_ros.bag_eval.eval_bag."""
    from ckd_tracker_ros.bag_eval import eval_bag as _eval
    return _eval(bag, **kwargs)

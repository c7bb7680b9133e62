"""`ckd bag`: rosbag2 tools (the code lives in ckd_tracker_ros.bag_tools / bag_play / bag_eval).

    ckd bag from-sequence data/vtuav/test_ST/seq0 --out bags/seq0 [--thermal-offset 0.01]
    ckd bag info bags/seq0
    ckd bag play bags/seq0 [--rate 1.0] [--lockstep] [--remap /camera/rgb/image_raw:=/rgb]
    ckd bag eval bags/seq0 [--checkpoint model.safetensors] [--out bag_eval] [--realtime]

from-sequence and info need only the `rosbags` package; play and eval need the ROS 2
environment (rclpy and this repository's interfaces): run them through scripts/with_env.sh
after `make setup`. ckd_core never imports ROS: everything is imported inside run().
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ckd_core.cli import CLIError

ROS_HINT = ("run `make setup` once, then run the command through the project's environment: "
            "scripts/with_env.sh ckd bag ...")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ckd_core.data.sequences import DATASETS

    sub = parser.add_subparsers(dest="bag_command", metavar="ACTION")
    p = sub.add_parser("from-sequence", help="write a benchmark sequence as a rosbag2 bag",
                       description="Write a sequence folder (any supported layout) as a "
                       "rosbag2 bag: RGB + thermal image topics with realistic stamps and the "
                       "ground truth on /ground_truth/{rgb,thermal} (see "
                       "ckd_tracker_ros/bag_tools.py).")
    p.add_argument("seq_dir", type=Path, metavar="SEQ_DIR", help="the sequence folder")
    p.add_argument("--out", required=True, type=Path, metavar="BAG",
                   help="bag folder to create (must not exist)")
    p.add_argument("--dataset", default="auto", choices=("auto",) + tuple(DATASETS),
                   help="layout of SEQ_DIR (default: detected)")
    p.add_argument("--rate", type=float, default=30.0, help="frames per second (default 30)")
    p.add_argument("--thermal-offset", type=float, default=0.0, metavar="S",
                   help="thermal stamps minus RGB stamps, seconds (default 0)")
    p.add_argument("--jitter", type=float, default=0.0, metavar="S",
                   help="plus a uniform random jitter in [-S, S] per thermal frame (default 0)")
    p.add_argument("--seed", type=int, default=0, help="jitter seed (default 0)")
    p.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"))
    p.add_argument("--compressed", action="store_true",
                   help="CompressedImage topics (<topic>/compressed) with the files' own "
                        "JPEG/PNG bytes instead of raw images")
    p.add_argument("--max-frames", type=int, metavar="N", help="only the first N frames")

    p = sub.add_parser("info", help="topics, counts and sequence metadata of a bag")
    p.add_argument("bag", type=Path, metavar="BAG")

    p = sub.add_parser("play", help="replay a bag's image pairs into a running graph",
                       description="Publish the bag's RGB and thermal images (sensor-data QoS) "
                       "in real time, or in lock-step with a tracker node (one pair at a "
                       "time, waiting for the node's detections of each).")
    p.add_argument("bag", type=Path, metavar="BAG")
    p.add_argument("--rate", type=float, default=1.0, help="real-time factor (default 1.0)")
    p.add_argument("--lockstep", action="store_true",
                   help="wait for --node's answer to each pair before the next")
    p.add_argument("--node", default="/ckd_tracker",
                   help="the tracker node answering lock-step pairs (default /ckd_tracker)")
    _common_play_arguments(p)
    p.add_argument("--wait", type=float, default=10.0, metavar="S",
                   help="seconds to wait for subscribers (default 10)")
    p.add_argument("--rgb-topic", help="the bag's RGB topic (default: detected)")
    p.add_argument("--thermal-topic", help="the bag's thermal topic (default: detected)")

    p = sub.add_parser("eval", help="evaluate the tracker node on a bag (scores + latency)",
                       description="Start the tracker node, initialise it on frame 0's ground "
                       "truth through ~/init_target, replay the bag (lock-step by default), "
                       "score the detections and write report.md / report.json.")
    p.add_argument("bag", type=Path, metavar="BAG")
    p.add_argument("--checkpoint", type=Path, metavar="FILE",
                   help="model file (default: the shipped model)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder (default: bag_eval/<bag name>)")
    p.add_argument("--realtime", action="store_true",
                   help="replay in real time (the node may drop pairs) instead of lock-step")
    p.add_argument("--rate", type=float, default=1.0, help="real-time factor (default 1.0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="node parameter override (YAML value), repeatable")
    p.add_argument("--node", metavar="NAME",
                   help="evaluate this running node instead of starting one")
    _common_play_arguments(p, reliable=False)
    p.add_argument("--max-frames", type=int, metavar="N", help="only the first N frames")
    p.add_argument("--overlay", action="store_true", help="also write overlay.mp4")


def _common_play_arguments(p: argparse.ArgumentParser, reliable: bool = True) -> None:
    p.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                   help="publish the bag topic FROM on TO, repeatable")
    if reliable:
        p.add_argument("--reliable", action="store_true",
                       help="publish reliable instead of best effort")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for the answer to one pair (default 60)")


def parse_remaps(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise CLIError(f"--remap {item!r}: expected FROM:=TO, e.g. "
                           "/camera/rgb/image_raw:=/rgb/image")
        out[src] = dst
    return out


def parse_params(items: list[str]) -> dict[str, object]:
    import yaml
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise CLIError(f"--param {item!r}: expected NAME=VALUE, e.g. slop=0.08")
        try:
            out[name] = yaml.safe_load(text)
        except yaml.YAMLError:
            out[name] = text
    return out


def _bag_tools():
    try:
        from ckd_tracker_ros import bag_tools
        import rosbags  # noqa: F401
    except ImportError as e:
        raise CLIError(f"ckd bag needs the `rosbags` package ({e}); install it with "
                       "`pip install .[ros]`, or " + ROS_HINT) from None
    return bag_tools


def _require_ros(action: str) -> None:
    for module in ("rclpy", "vision_msgs.msg", "ckd_tracker_ros.msg", "ckd_tracker_ros.srv"):
        try:
            __import__(module)
        except Exception as e:  # noqa: BLE001 - ImportError or a broken ROS install
            raise CLIError(f"ckd bag {action} needs the ROS environment ({module} is not "
                           f"importable: {e}); " + ROS_HINT) from None


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "bag_command", None)
    if not action:
        raise CLIError("choose an action: from-sequence, info, play or eval (ckd bag -h)")
    tools = _bag_tools()
    try:
        if action == "from-sequence":
            return _from_sequence(tools, args)
        if action == "info":
            print(tools.read_index(args.bag).summary())
            return 0
        _require_ros(action)
        if action == "play":
            return _play(args)
        return _eval(args)
    except tools.BagError as e:
        raise CLIError(str(e)) from None


def _from_sequence(tools, args) -> int:
    import time
    start = time.perf_counter()
    out = tools.from_sequence(
        args.seq_dir, args.out, None if args.dataset == "auto" else args.dataset,
        rate_hz=args.rate, thermal_offset_s=args.thermal_offset, jitter_s=args.jitter,
        seed=args.seed, storage=args.storage, compressed=args.compressed,
        max_frames=args.max_frames)
    index = tools.read_index(out)
    print(index.summary())
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return 0


def _play(args) -> int:
    from ckd_tracker_ros.bag_play import play
    from ckd_tracker_ros.process import settle_process
    settle_process()  # image-sized buffers reused, as in the node (ckd_tracker_ros/process.py)
    result = play(args.bag, rate=args.rate, lockstep=args.lockstep, node=args.node,
                  remap=parse_remaps(args.remap), reliable=args.reliable,
                  timeout_s=args.timeout, wait_s=args.wait, rgb_topic=args.rgb_topic,
                  thermal_topic=args.thermal_topic)
    return 1 if result.aborted else 0


def _eval(args) -> int:
    from ckd_tracker_ros.bag_eval import eval_bag
    from ckd_tracker_ros.process import settle_process
    settle_process()  # the player and the in-process node publish camera-sized images
    out = args.out or Path("bag_eval") / args.bag.name
    result = eval_bag(args.bag, checkpoint=args.checkpoint, out_dir=out,
                      lockstep=not args.realtime, rate=args.rate, device=args.device,
                      params=parse_params(args.param), node=args.node,
                      remap=parse_remaps(args.remap) or None, timeout_s=args.timeout,
                      max_frames=args.max_frames, overlay=args.overlay)
    print(result.summary())
    print(f"report: {result.files['report_md']}")
    return 1 if result.report.get("aborted") else 0

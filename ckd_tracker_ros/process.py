"""Process-wide settings for long-running processes that move camera images through rclpy
(the tracker node, the bag player): see `settle_process`. No ROS import."""

from __future__ import annotations

import ctypes
import gc

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's upper limit on 64-bit systems


def settle_process(tune_malloc: bool = True) -> list[str]:
    """Process-wide settings for a long-running image node, applied once the node (and its
    model) is built; returns what was applied, for the log. `main()` calls it; so does the
    overhead benchmark, which must measure the node as `ros2 run` starts it, and `ckd bag
    play` / `ckd bag eval`, which publish the same images.

    - `gc.freeze()`: the ~400 k objects that exist after start-up (torch, rclpy, the model)
      leave the cyclic garbage collector's generations, so its full collections - otherwise
      long pauses at random frames - only walk what was created since.
    - glibc only (skipped elsewhere): buffers up to 32 MiB come from the heap and freed
      memory is kept for reuse (`mallopt` M_MMAP_THRESHOLD / M_TRIM_THRESHOLD / M_TOP_PAD).
      With glibc's defaults each image-sized buffer (a 1920x1080 rgb8 frame is 6 MB; rclpy,
      DDS and numpy each allocate some per message) gets fresh pages from the kernel, and
      faulting and zeroing them costs more than copying the image: publish -> callback of
      one 1920x1080 rgb8 Image in one process is ~6x faster with these settings
      (benchmarks/bench_image_transport.py, results/image_transport.md). The price: the
      process keeps its peak heap instead of handing freed memory back to the system.
    """
    applied = []
    gc.freeze()
    applied.append("gc.freeze")
    if tune_malloc:
        try:
            libc = ctypes.CDLL(None)  # the C library the interpreter runs on
        except OSError:
            libc = None
        mallopt = getattr(libc, "mallopt", None)
        gnu = getattr(libc, "gnu_get_libc_version", None)
        if mallopt is not None and gnu is not None:  # glibc: musl / macOS have no mallopt
            ok = all(mallopt(param, value) == 1 for param, value in (
                (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX),
                (_M_TRIM_THRESHOLD, 8 * _MMAP_THRESHOLD_MAX),
                (_M_TOP_PAD, 2 * _MMAP_THRESHOLD_MAX)))
            if ok:
                applied.append("glibc malloc keeps image-sized buffers")
    return applied

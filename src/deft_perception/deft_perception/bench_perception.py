"""
Benchmark the segmentation backends: median seconds from a new RGB-D frame to the object mask.

A synthetic 640 x 480 tabletop (a plane 0.9 m away, one box 5 cm tall, a noise texture), the
salient-object prompt, a new frame (new bytes) every repeat so the sam backend recomputes its
image embedding each time. `sam` is vit_b and `mobile_sam` MobileSAM, with random weights:
their latency is the real one, their masks are meaningless. MobileSAM is timed at each of
--mobile-sam-sizes (the longest side its encoder sees; 512 is the node's default, 1024 SAM's),
from a new frame to the mask of a point prompt, and of a box prompt on the same embedding.
Torch runs as the nodes run it: one intra-op thread, OMP_WAIT_POLICY=PASSIVE (--threads,
--omp-wait-policy). Results are merged into results/bench.json as segment_latency_s (the whole
image -> 3D grasp prior path is deft_eval.bench_prior: prior_latency_s).
"""

import argparse
import json
import os
from pathlib import Path
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from deft_common.torch_threads import add_thread_arguments, configure_from_arguments
from deft_perception.geometry import CameraModel
from deft_perception.prompts import Prompt
from deft_perception.segmentation import BACKENDS, SegmentationError, make_segmenter

W, H = 640, 480
CAMERA = CameraModel(525.0, 525.0, 319.5, 239.5, W, H)


def scene(seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Return (rgb uint8, depth m) of a box on a table, textured by `seed`."""
    rgb = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = np.full((H, W), 0.9, np.float32)
    depth[180:300, 260:380] = 0.85
    rgb[180:300, 260:380] = (200, 40, 40)
    return rgb, depth


def _segmenter(backend: str):
    if backend not in BACKENDS:
        raise ValueError(f'unknown backend {backend!r}; available: {", ".join(BACKENDS)}')
    if backend == 'sam':
        return make_segmenter('sam', sam_model_type='vit_b', sam_allow_random=True)
    return make_segmenter(backend)


def measure_latency(backend: str, repeats: int = 3, segmenter=None) -> float:
    """Return the median seconds image -> mask of `backend` over `repeats` new frames."""
    seg = segmenter if segmenter is not None else _segmenter(backend)
    times = []
    for i in range(max(1, repeats)):
        rgb, depth = scene(i)
        t0 = time.perf_counter()
        try:
            seg.segment(rgb, depth, CAMERA, Prompt('salient'))
        except SegmentationError:  # an answer too (random sam weights may find nothing)
            pass
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure_sam(repeats: int = 2) -> Dict[str, float]:
    """Return construction, embedding and prompt latencies of sam vit_b (random weights), s."""
    t0 = time.perf_counter()
    seg = _segmenter('sam')
    build = time.perf_counter() - t0
    embed, point, salient = [], [], []
    for i in range(max(1, repeats)):
        rgb, depth = scene(i)
        seg.segment(rgb, depth, CAMERA, Prompt('point', point=(320.0, 240.0)))
        embed.append(seg.last_timing['set_image_s'])
        point.append(seg.last_timing['predict_s'])
        t0 = time.perf_counter()
        try:  # the embedding is cached: this is the proposals' cost
            seg.segment(rgb, depth, CAMERA, Prompt('salient'))
        except SegmentationError:  # random weights may propose only specks or background
            pass
        salient.append(time.perf_counter() - t0)
    return {'build_s': build, 'set_image_s': float(np.median(embed)),
            'predict_point_s': float(np.median(point)),
            'predict_salient_s': float(np.median(salient)),
            'image_to_mask_s': float(np.median(embed) + np.median(point))}


def measure_mobile_sam(input_size: int, repeats: int = 3) -> Dict[str, float]:
    """
    Return MobileSAM's latencies at `input_size` px (random weights), s; medians over frames.

    image_to_mask_s: a new frame to the mask of a point prompt (embedding + decoder);
    predict_box_s: a box prompt on the same frame afterwards (decoder only, cached embedding).
    """
    t0 = time.perf_counter()
    seg = make_segmenter('mobile_sam', sam_allow_random=True, mobile_sam_input_size=input_size)
    build = time.perf_counter() - t0
    total, embed, point, box = [], [], [], []
    for i in range(max(1, repeats)):
        rgb, depth = scene(100 + i)
        t0 = time.perf_counter()
        seg.segment(rgb, depth, CAMERA, Prompt('point', point=(320.0, 240.0)))
        total.append(time.perf_counter() - t0)
        embed.append(seg.last_timing['set_image_s'])
        point.append(seg.last_timing['predict_s'])
        seg.segment(rgb, depth, CAMERA, Prompt('box', box=(260.0, 180.0, 380.0, 300.0)))
        box.append(seg.last_timing['predict_s'])
    return {'build_s': build, 'set_image_s': float(np.median(embed)),
            'predict_point_s': float(np.median(point)), 'predict_box_s': float(np.median(box)),
            'image_to_mask_s': float(np.median(total))}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the measurement as JSON and optionally merge it into the results file."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--repeats', type=int, default=5, help='frames per weight-free backend')
    parser.add_argument('--sam-repeats', type=int, default=2,
                        help='frames for sam (about 40 s each for vit_b on two CPU cores)')
    parser.add_argument('--skip-sam', action='store_true')
    parser.add_argument('--mobile-sam-sizes', default='512,1024',
                        help='comma-separated MobileSAM input sizes, px (empty: no mobile_sam)')
    parser.add_argument('--mobile-sam-repeats', type=int, default=3,
                        help='frames per MobileSAM input size')
    add_thread_arguments(parser)
    parser.add_argument('--out', type=Path, default=None,
                        help='merge segment_latency_s into this JSON file (make bench)')
    opts = parser.parse_args(argv)
    try:
        sizes = [int(v) for v in opts.mobile_sam_sizes.split(',') if v.strip()]
    except ValueError:
        parser.error(f'--mobile-sam-sizes {opts.mobile_sam_sizes!r}: expected e.g. 512,1024')
    threads = configure_from_arguments(opts) \
        if sizes or not opts.skip_sam else None  # fake and depth never import torch
    medians = {b: measure_latency(b, opts.repeats) for b in ('fake', 'depth')}
    mobile = {}
    for size in sizes:
        mobile[f'{size}px'] = measure_mobile_sam(size, opts.mobile_sam_repeats)
        medians[f'mobile_sam_{size}px'] = mobile[f'{size}px']['image_to_mask_s']
        print(f'mobile_sam {size} px: {medians[f"mobile_sam_{size}px"]:.3f} s image -> mask '
              f'(load average {tuple(round(v, 2) for v in os.getloadavg())})', flush=True)
    sam = None if opts.skip_sam else measure_sam(opts.sam_repeats)
    if sam is not None:
        medians['sam_vit_b'] = sam['image_to_mask_s']
    print(json.dumps({'median_s': medians, 'mobile_sam': mobile, 'sam_vit_b': sam,
                      'torch': threads.describe() if threads else None}, indent=2))
    if opts.out is not None:
        results = json.loads(opts.out.read_text()) if opts.out.is_file() else {}
        results['segment_latency_s'] = {
            'value': {k: round(v, 4) for k, v in medians.items()}, 'unit': 's',
            'detail': (f'median seconds from a new {W}x{H} RGB-D frame to the object mask per '
                       f'segmentation backend ({opts.repeats} frames; sam: vit_b, random '
                       f'weights, point prompt, {opts.sam_repeats} frames; mobile_sam_<n>px: '
                       'MobileSAM, random weights, input side n px, point prompt, '
                       f'{opts.mobile_sam_repeats} frames; '
                       f'{threads.describe() if threads else "no torch"})'),
            'sam_vit_b': None if sam is None else {k: round(v, 4) for k, v in sam.items()},
            'mobile_sam': {size: {k: round(v, 4) for k, v in m.items()}
                           for size, m in mobile.items()},
            'load_average': tuple(round(v, 2) for v in os.getloadavg())}
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(results, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

"""
Benchmark `prior_latency_s`: median seconds from a new RGB-D frame to the 3D grasp prior.

Per segmentation backend (fake, depth, mobile_sam and sam vit_b), the path affordance/predict
takes with the `model` backend, in one process and without ROS transport: segment the frame (the
perception node's crop and 3D points), run the affordance model f(crop, task) and turn it into
the base-frame prior (deft_affordance.lifting.model_grasp: lift the contact with depth, wrist
to the base frame, MANO retargeted to the hand's joints). The frames are rendered by the MuJoCo
twin (pick_cup, a new placement each repeat; the rendering is not timed: on the robot the
camera delivers it). The models are the real architectures with random weights (nothing can be
downloaded here): ResNet-18 + CLIP ViT-B-32 text tower at the model's default 224 px input,
MobileSAM at its default 512 px input, SAM vit_b; their latency is the real one, their outputs
are meaningless (a contact too far from the object is then refused after all the work is done,
and still timed). Torch runs as the nodes run it: one intra-op thread, OMP_WAIT_POLICY=PASSIVE
(--threads, --omp-wait-policy; deft_common.torch_threads).

`prior_latency_load_ratio`: the same latency of depth and mobile_sam measured again while the
bench keeps every core busy (one process per core spinning a tight loop, started and ended by
the bench), divided by the idle figure of the same run. The machine's load average is printed
with each figure and stored: "idle" means without the bench's own load, not an idle machine.

    python -m deft_eval.bench_prior --out results/bench.json [--repeats 5] [--sam-repeats 2]

Goals of the issue: at most 0.15 s with `depth`, at most 1.0 s with a SAM-family backend.
"""

import argparse
import json
import multiprocessing
import os
from pathlib import Path
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from deft_common.torch_threads import add_thread_arguments, configure_from_arguments

GOALS_S = {'depth': 0.15, 'mobile_sam': 1.0, 'sam_vit_b': 1.0}
LOADED_BACKENDS = ('depth', 'mobile_sam')  # measured again with every core busy
TASK = 'pick_cup'


def load_average() -> Tuple[float, float, float]:
    """Return the machine's 1, 5 and 15 minute load averages (runnable processes)."""
    return tuple(round(v, 2) for v in os.getloadavg())


def _spin(ready) -> None:
    """Keep one core busy until terminated: say so, then count forever."""
    ready.put(os.getpid())
    n = 0
    while True:
        n += 1


class CpuLoad:
    """
    One busy process per core while the context is open (`processes` overrides the count).

    The processes are started with `spawn` (nothing of this process's torch, OpenMP or GL
    state is copied), counted as busy once each has said so, and terminated (killed if they
    ignore it) on exit; they are daemons, so they also end with this process.
    """

    def __init__(self, processes: int = 0, start_timeout: float = 60.0):
        self.count = processes or os.cpu_count() or 1
        self.start_timeout = start_timeout
        self.processes: List[multiprocessing.Process] = []

    def __enter__(self) -> 'CpuLoad':
        ctx = multiprocessing.get_context('spawn')
        ready = ctx.Queue()
        self.processes = [ctx.Process(target=_spin, args=(ready,), daemon=True,
                                      name=f'bench-load-{i}') for i in range(self.count)]
        try:
            for proc in self.processes:
                proc.start()
            for _ in self.processes:
                ready.get(timeout=self.start_timeout)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.processes:
            if proc.is_alive():
                proc.terminate()
        for proc in self.processes:
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)


def build_model(image_size: int = 224):
    """Return the affordance model with the real default architecture, randomly initialised."""
    import torch

    from deft_affordance.model import AffordanceModel
    torch.manual_seed(0)
    return AffordanceModel.build(backbone='resnet18', clip_model='ViT-B-32', allow_random=True,
                                 image_size=image_size)


def segmenter_of(backend: str, evaluator):
    """Return the segmenter of a backend name (sam: vit_b, mobile_sam: 512 px; random weights)."""
    from deft_perception.segmentation import make_segmenter
    if backend == 'depth':
        return evaluator.segmenter  # the sim profile's depth settings
    if backend == 'sam_vit_b':
        return make_segmenter('sam', sam_model_type='vit_b', sam_allow_random=True,
                              **evaluator.s.segmentation)
    if backend == 'mobile_sam':  # at the node's default input size
        return make_segmenter('mobile_sam', sam_allow_random=True, **evaluator.s.segmentation)
    return make_segmenter(backend)


def frame_to_prior(evaluator, segmenter, rgb: np.ndarray, depth: np.ndarray, prompt: str):
    """Segment a frame, predict and lift the prior; return the ModelGrasp (ValueError if none)."""
    from deft_affordance.lifting import model_grasp
    from deft_perception.geometry import crop_resize, crop_window, mask_box
    from deft_perception.prompts import parse_prompt

    h, w = depth.shape
    cam = evaluator.camera_model
    mask = segmenter.segment(rgb, depth, cam, parse_prompt(prompt, w, h))
    points, _ = cam.backproject(mask, depth)
    window = crop_window(mask_box(mask), evaluator.s.crop_margin, w, h)
    crop = crop_resize(rgb, window, evaluator.s.crop_size)
    pred = evaluator.model.predict(crop, evaluator.spec.text)
    return model_grasp(pred, crop.shape[1], window, points, evaluator.k,
                       evaluator.camera_to_base, evaluator.retargeter,
                       evaluator.hand.joint_names, evaluator.s.max_lift_distance_px)


def measure(evaluator, backend: str, repeats: int, segmenter=None) -> Dict[str, object]:
    """Return the median, all times and how many priors were refused, over `repeats` frames."""
    segmenter = segmenter if segmenter is not None else segmenter_of(backend, evaluator)
    times: List[float] = []
    refused = 0
    for i in range(repeats + 1):  # one untimed warm-up frame, as the node warms up at start
        evaluator.world.reset(900_000 + i, 'test')
        rgb, depth = evaluator.world.render()
        prompt = evaluator.prompt()
        t0 = time.perf_counter()
        try:
            frame_to_prior(evaluator, segmenter, rgb, depth, prompt)
        except ValueError:  # random weights: the contact may land off the object
            refused += i > 0
        if i > 0:
            times.append(time.perf_counter() - t0)
        print(f'  {backend}: frame {i}/{repeats} {time.perf_counter() - t0:.3f} s'
              + (' (warm-up)' if i == 0 else ''), flush=True)
    return {'median_s': float(np.median(times)), 'times_s': [round(t, 4) for t in times],
            'refused': refused, 'load_average': load_average()}


def measure_loaded(evaluator, segmenters: Dict[str, object], idle: Dict[str, Dict[str, object]],
                   repeats: int, processes: int = 0) -> Dict[str, Dict[str, object]]:
    """
    Measure each backend again with every core busy; return loaded / idle per backend.

    `segmenters` are the ones the idle figures were measured with, `idle` their results.
    """
    out: Dict[str, Dict[str, object]] = {}
    with CpuLoad(processes) as load:
        print(f'with {load.count} busy processes (one per core)', flush=True)
        for backend, segmenter in segmenters.items():
            r = measure(evaluator, backend, repeats, segmenter)
            base = idle[backend]['median_s']
            out[backend] = {'ratio': r['median_s'] / base, 'idle_s': base,
                            'loaded_s': r['median_s'], 'times_s': r['times_s'],
                            'busy_processes': load.count,
                            'load_average_idle': idle[backend]['load_average'],
                            'load_average_loaded': r['load_average']}
            print(f'  {backend}: loaded {r["median_s"]:.3f} s / idle {base:.3f} s = '
                  f'{out[backend]["ratio"]:.2f} (load average {r["load_average"]})', flush=True)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure every backend, print a table and merge prior_latency_s into --out."""
    parser = argparse.ArgumentParser(prog='python -m deft_eval.bench_prior',
                                     description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--repeats', type=int, default=5, help='frames per weight-free backend')
    parser.add_argument('--sam-repeats', type=int, default=2,
                        help='frames for sam vit_b (its image encoder is the cost)')
    parser.add_argument('--skip-sam', action='store_true', help='no sam vit_b')
    parser.add_argument('--skip-mobile-sam', action='store_true', help='no mobile_sam')
    parser.add_argument('--load-repeats', type=int, default=5,
                        help='frames per backend (depth, mobile_sam) with every core busy; '
                             '0: no loaded measurement')
    parser.add_argument('--load-processes', type=int, default=0,
                        help='busy processes of the loaded measurement (0: one per core)')
    add_thread_arguments(parser)
    parser.add_argument('--small-size', type=int, default=96,
                        help='also time depth with the model at this input side (the '
                             "recipe's default); 0: no")
    parser.add_argument('--out', type=Path, default=None, help='merge into this JSON file')
    opts = parser.parse_args(argv)
    if opts.repeats < 1 or opts.sam_repeats < 1 or opts.load_repeats < 0:
        parser.error('--repeats and --sam-repeats must be >= 1, --load-repeats >= 0')
    os.environ.setdefault('MUJOCO_GL', 'egl')
    threads = configure_from_arguments(opts)
    print(threads.describe(), flush=True)
    from deft_eval.sim_eval import SimEvaluator, load_torch_before_gl
    load_torch_before_gl()
    print(f'building the affordance model (ResNet-18 + CLIP ViT-B-32, random weights) and the '
          f'{TASK} world', flush=True)
    results: Dict[str, Dict[str, object]] = {}
    loaded: Dict[str, Dict[str, object]] = {}
    with SimEvaluator(TASK, model=build_model()) as evaluator:
        backends = ['fake', 'depth'] + ([] if opts.skip_mobile_sam else ['mobile_sam']) \
            + ([] if opts.skip_sam else ['sam_vit_b'])
        segmenters = {}
        for backend in backends:
            repeats = opts.sam_repeats if backend.startswith('sam') else opts.repeats
            try:
                segmenters[backend] = segmenter_of(backend, evaluator)
                results[backend] = measure(evaluator, backend, repeats, segmenters[backend])
            except (ValueError, ImportError) as exc:
                print(f'{backend}: not measured: {exc}', file=sys.stderr)
        if opts.load_repeats:
            loaded = measure_loaded(evaluator, {b: segmenters[b] for b in LOADED_BACKENDS
                                                if b in results},
                                    results, opts.load_repeats, opts.load_processes)
        if opts.small_size:
            evaluator.model = build_model(opts.small_size)
            results[f'depth_{opts.small_size}px'] = measure(evaluator, 'depth', opts.repeats)
    print(f'\n{"backend":<10} {"median s":>9} {"goal s":>7}  refused  load average')
    for backend, r in results.items():
        goal = GOALS_S.get(backend.split('_')[0] if backend.startswith('depth') else backend)
        print(f'{backend:<10} {r["median_s"]:>9.3f} {goal if goal else "-":>7}  '
              f'{r["refused"]}/{len(r["times_s"])}      {r["load_average"]}')
    for backend, r in loaded.items():
        print(f'{backend} with {r["busy_processes"]} busy processes: {r["loaded_s"]:.3f} s, '
              f'{r["ratio"]:.2f} x idle (load average {r["load_average_loaded"]})')
    if opts.out is not None:
        data = json.loads(opts.out.read_text()) if opts.out.is_file() else {}
        data['prior_latency_s'] = {
            'value': {b: round(r['median_s'], 4) for b, r in results.items()}, 'unit': 's',
            'goal': GOALS_S,
            'detail': ('median seconds from a new 640x480 RGB-D frame of the MuJoCo twin to the '
                       'base-frame grasp prior (segment, crop, affordance model, lift, '
                       'retarget), per segmentation backend; random weights of the real '
                       'architectures (ResNet-18 + CLIP ViT-B-32 at 224 px, MobileSAM at 512 '
                       'px, SAM vit_b); depth_<n>px: the model at the n px input of '
                       'deft_affordance_recipe; after one warm-up frame; '
                       f"{threads.describe()}; runs[*].load_average: the machine's 1/5/15 "
                       'min load averages after the frames'),
            'runs': results}
        if loaded:
            data['prior_latency_load_ratio'] = {
                'value': {b: round(r['ratio'], 3) for b, r in loaded.items()}, 'unit': 'ratio',
                'detail': ('prior_latency_s measured again while the bench keeps every core '
                           'busy (one process per core spinning a tight loop), divided by the '
                           'idle median of the same run; 1.0: the load costs nothing. '
                           '"idle" = without the bench\'s load (load_average_idle says how '
                           f'busy the machine was); {threads.describe()}'),
                'runs': {b: {k: (round(v, 4) if isinstance(v, float) else v)
                             for k, v in r.items()} for b, r in loaded.items()}}
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(data, indent=2) + '\n')
        print(f'merged prior_latency_s{" and prior_latency_load_ratio" if loaded else ""} '
              f'into {opts.out}')
    return 0 if results else 1


if __name__ == '__main__':
    raise SystemExit(main())

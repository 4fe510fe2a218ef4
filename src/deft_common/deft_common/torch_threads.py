"""
Torch's CPU threads in the nodes that run models: intra-op threads and the OpenMP wait policy.

Why (measured on the two-core development machines): with torch's defaults (a thread per core,
OpenMP threads that spin while they wait) the frame -> grasp prior path with mobile_sam took 3.7
times as long with every core kept busy by other processes as without, and with depth 9.7
times; with one thread and PASSIVE (waiting threads sleep) 1.4 times for both, about what a
fair share of the cores gives (deft_eval.bench_prior, prior_latency_load_ratio; MobileSAM at
256 px beside a test run: 0.13 s per frame with one thread, 4.6 s with two). So the nodes that
run torch (perception with sam or mobile_sam, affordance with the model backend) use one
intra-op thread and the PASSIVE wait policy by default, both node parameters.

When each setting takes effect:
- intra-op threads: `torch.set_num_threads`, at any time; it holds for every thread of the
  process (torch applies it in each thread on that thread's first parallel operation), so in
  the executor threads that serve the node's callbacks too.
- wait policy: the OpenMP runtime reads `OMP_WAIT_POLICY` from the environment once, when it is
  loaded, which is when torch is first imported. The nodes read their parameters in their
  constructor, before they build a torch backend and so before anything imports torch: the
  parameter is put in the environment there (`configure_torch_threads`), which is early enough
  without parsing the command line in main(). If torch was imported before (a node built in a
  process that already runs torch, e.g. a test), the policy in force cannot change: the
  returned `TorchThreads.note` says so, and the node logs it. `OMP_WAIT_POLICY` set in the
  environment of the process always works; an empty parameter keeps it as it is.

Importing this module does not import torch.
"""

from dataclasses import dataclass
import os
import sys

WAIT_POLICIES = ('PASSIVE', 'ACTIVE', '')
DEFAULT_THREADS = 1
DEFAULT_WAIT_POLICY = 'PASSIVE'
ENV = 'OMP_WAIT_POLICY'


@dataclass(frozen=True)
class TorchThreads:
    """What is in force after configure_torch_threads."""

    threads: int  # torch's intra-op threads (torch.get_num_threads())
    wait_policy: str  # OMP_WAIT_POLICY of this process ('' = unset: the runtime's default)
    note: str = ''  # why the wait policy asked for is not in force, or ''

    def describe(self) -> str:
        """Return one line for a node's log."""
        text = (f'torch: {self.threads} intra-op thread{"s" if self.threads != 1 else ""}, '
                f'{ENV}={self.wait_policy or "(unset)"}')
        return f'{text} ({self.note})' if self.note else text


def check_wait_policy(policy: str) -> str:
    """Return the policy in upper case; ValueError naming the choices if it is not one."""
    value = policy.strip().upper()
    if value not in WAIT_POLICIES:
        raise ValueError(f'omp_wait_policy {policy!r}; expected PASSIVE, ACTIVE or empty (keep '
                         f"the environment's {ENV})")
    return value


def set_wait_policy(policy: str) -> str:
    """
    Put OMP_WAIT_POLICY=policy in this process's environment, if torch has not loaded yet.

    Return '' when the policy is in force (or `policy` is empty: nothing to do), else a note
    saying that torch's OpenMP runtime already read another value. ValueError for a policy
    other than PASSIVE, ACTIVE or empty.
    """
    value = check_wait_policy(policy)
    current = os.environ.get(ENV, '').strip().upper()
    if not value or current == value:
        return ''
    if 'torch' in sys.modules:
        return (f'{ENV}={value} asked for, but torch was imported before with '
                f'{current or "the OpenMP default"}, which stays in force; set {ENV}={value} in '
                'the environment of the process')
    os.environ[ENV] = value
    return ''


def configure_torch_threads(threads: int = DEFAULT_THREADS,
                            wait_policy: str = DEFAULT_WAIT_POLICY) -> TorchThreads:
    """
    Set the OpenMP wait policy (before importing torch) and torch's intra-op threads.

    `threads` 0 keeps torch's default (one per core). ValueError for a negative count or an
    unknown policy. Imports torch.
    """
    if threads < 0:
        raise ValueError(f'torch_threads {threads}: expected 0 (torch default) or more')
    note = set_wait_policy(wait_policy)
    import torch

    if threads:
        torch.set_num_threads(threads)
    return TorchThreads(torch.get_num_threads(), os.environ.get(ENV, ''), note)


def add_thread_arguments(parser) -> None:
    """Add --threads and --omp-wait-policy (the nodes' defaults) to an argparse parser."""
    parser.add_argument('--threads', type=int, default=DEFAULT_THREADS,
                        help="torch intra-op threads (the nodes' default; 0: one per core)")
    parser.add_argument('--omp-wait-policy', default=DEFAULT_WAIT_POLICY,
                        choices=[p for p in WAIT_POLICIES if p] + ['keep'],
                        help="OMP_WAIT_POLICY set before torch loads (the nodes' default; keep: "
                             'as the environment has it)')


def configure_from_arguments(opts) -> TorchThreads:
    """configure_torch_threads from the options of add_thread_arguments (imports torch)."""
    return configure_torch_threads(opts.threads, '' if opts.omp_wait_policy == 'keep'
                                   else opts.omp_wait_policy)

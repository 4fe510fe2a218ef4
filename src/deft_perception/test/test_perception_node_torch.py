"""
In-process: the perception node builds the torch backends with the threads of its parameters.

The node is built in this test process, where torch is already loaded: its wait policy cannot
change any more (the helper's own tests start fresh processes for that), so these tests check
the intra-op threads, the backend's parameters and the configuration errors.
"""

import pytest
import rclpy
from rclpy.parameter import Parameter
import torch

from deft_common.node_main import ConfigurationError
from deft_perception.mobile_sam_backend import MobileSamSegmenter
from deft_perception.perception_node import PARAMS, PerceptionNode


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    before = torch.get_num_threads()
    yield ctx
    torch.set_num_threads(before)
    rclpy.try_shutdown(context=ctx)


def node(ctx, **params):
    return PerceptionNode(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])


@pytest.mark.parametrize('threads', [1, 2])
def test_mobile_sam_runs_with_the_threads_of_its_parameter(context, threads):
    n = node(context, backend='mobile_sam', sam_allow_random=True, mobile_sam_input_size=128,
             torch_threads=threads, omp_wait_policy='')
    try:
        assert isinstance(n.segmenter, MobileSamSegmenter) and n.segmenter.input_size == 128
        assert torch.get_num_threads() == threads
    finally:
        n.destroy_node()


def test_the_defaults_are_one_thread_passive_and_512_px():
    defaults = {p.name: p.default for p in PARAMS}
    assert defaults['torch_threads'] == 1 and defaults['omp_wait_policy'] == 'PASSIVE'
    assert defaults['mobile_sam_input_size'] == 512


@pytest.mark.parametrize('params, message', [
    ({'mobile_sam_input_size': 500, 'sam_allow_random': True}, 'multiple of 16'),
    ({}, 'needs mobile_sam_checkpoint'),
])
def test_a_bad_mobile_sam_configuration_stops_the_node_with_a_reason(context, params, message):
    with pytest.raises(ConfigurationError, match=message):
        node(context, backend='mobile_sam', **params)

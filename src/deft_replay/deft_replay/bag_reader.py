"""Reading episode bags back into an EpisodeBag (format: deft_replay.bag_format)."""

import json
import logging
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
from rosbags.rosbag2 import Reader

from deft_replay.bag_format import (
    TOPICS,
    EpisodeBag,
    EpisodeBagError,
    JointSample,
    episode_typestore,
    image_depth,
    image_rgb,
    stamp_ns,
    to_plain,
)

LOG = logging.getLogger(__name__)


def _role(topic: str, namespace: Optional[str]) -> Optional[str]:
    for role, (relative, _) in TOPICS.items():
        if namespace is None:
            if topic == '/' + relative or topic.endswith('/' + relative):
                return role
        elif topic == f'{namespace.rstrip("/")}/{relative}':
            return role
    return None


def is_bag(path: Union[str, os.PathLike]) -> bool:
    """Return True for a rosbag2 directory (metadata.yaml) or a single .mcap file."""
    path = Path(path)
    return (path.is_dir() and (path / 'metadata.yaml').is_file()) or \
        (path.is_file() and path.suffix == '.mcap')


def read_episode_bag(path: Union[str, os.PathLike], namespace: Optional[str] = None,
                     msg_dir: Optional[Union[str, os.PathLike]] = None) -> EpisodeBag:
    """
    Read an episode bag; topics and types it does not know are skipped with a warning.

    `namespace` None accepts the episode topics under any namespace. The first colour frame is
    I0, the last one (when there are two or more) the final frame; depth likewise. Raises
    EpisodeBagError when `path` is not a readable rosbag2.
    """
    path = Path(path)
    store = episode_typestore(msg_dir)
    bag = EpisodeBag(path=path)

    def skip(reason: str) -> None:
        LOG.warning('%s: %s', path, reason)
        bag.skipped.append(reason)

    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises ReaderError, FileNotFoundError, YAML errors, ...
        raise EpisodeBagError(f'{path} is not a readable rosbag2: {exc}') from exc
    images, depths, infos = [], [], []
    try:
        wanted = {}
        for conn in reader.connections:
            role = _role(conn.topic, namespace)
            if role is None:
                skip(f'skipping topic {conn.topic} ({conn.msgtype}): not an episode topic')
                continue
            expected = TOPICS[role][1]
            if conn.msgtype != expected:
                skip(f'skipping topic {conn.topic}: type {conn.msgtype}, expected {expected}')
                continue
            digest = conn.digest if str(conn.digest).startswith('RIHS01_') else ''
            if digest and digest != store.hash_rihs01(expected):
                skip(f'skipping topic {conn.topic}: its {expected} definition differs from '
                     f'the installed one (hash {digest})')
                continue
            wanted[conn.id] = role
        connections = [c for c in reader.connections if c.id in wanted]
        messages = reader.messages(connections=connections) if connections else ()
        for conn, log_ns, raw in messages:
            role = wanted[conn.id]
            try:
                msg = store.deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:  # noqa: B902 - corrupt data of any kind
                skip(f'skipping a message on {conn.topic} at {log_ns}: cannot deserialise '
                     f'({type(exc).__name__}: {exc})')
                continue
            if role == 'image':
                images.append(msg)
            elif role == 'depth':
                depths.append(msg)
            elif role == 'camera_info':
                infos.append(msg)
            elif role == 'joint_states':
                bag.joint_states.append(JointSample(
                    stamp_ns(msg.header.stamp) or log_ns, list(msg.name),
                    np.asarray(msg.position).tolist(), np.asarray(msg.velocity).tolist(),
                    np.asarray(msg.effort).tolist()))
            elif role == 'prior':
                bag.prior = to_plain(store, conn.msgtype, msg)
            elif role == 'record':
                bag.record = to_plain(store, conn.msgtype, msg)
            elif role == 'metadata':
                try:
                    bag.metadata.update(json.loads(msg.data))
                except (ValueError, TypeError):
                    skip(f'skipping {conn.topic}: not a JSON object')
    finally:
        reader.close()
    _decode_frames(bag, images, depths, infos, skip)
    return bag


def _decode_frames(bag: EpisodeBag, images, depths, infos, skip) -> None:
    try:
        if images:
            bag.initial_rgb = image_rgb(images[0])
            bag.initial_stamp_ns = stamp_ns(images[0].header.stamp)
            bag.height, bag.width = bag.initial_rgb.shape[:2]
        if len(images) > 1:
            bag.final_rgb = image_rgb(images[-1])
            bag.final_stamp_ns = stamp_ns(images[-1].header.stamp)
    except EpisodeBagError as exc:
        skip(f'skipping the colour frames: {exc}')
    try:
        if depths:
            bag.initial_depth = image_depth(depths[0])
        if len(depths) > 1:
            bag.final_depth = image_depth(depths[-1])
    except EpisodeBagError as exc:
        skip(f'skipping the depth frames: {exc}')
    if infos:
        bag.camera_k = np.asarray(infos[0].k, dtype=float).tolist()
        if not bag.width:
            bag.width, bag.height = int(infos[0].width), int(infos[0].height)

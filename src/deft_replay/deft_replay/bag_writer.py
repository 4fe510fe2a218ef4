"""Writing episode bags: one rosbag2 (MCAP) per episode, atomically (see bag_format)."""

import json
import os
from pathlib import Path
import shutil
import tempfile
import time
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from deft_replay.bag_format import (
    _TIME,
    BAGS_DIR,
    NAMESPACE,
    TOPICS,
    EpisodeBagError,
    Frame,
    FrameLike,
    JointSample,
    Message,
    _header,
    build_message,
    episode_typestore,
    image_fields,
    stamp_ns,
)


def episode_bag_path(run_dir: Union[str, os.PathLike], episode: int) -> Path:
    """Return where a run keeps the bag of an episode: <run_dir>/bags/<episode:06d>."""
    return Path(run_dir) / BAGS_DIR / f'{int(episode):06d}'


def _as_frame(value: FrameLike, what: str) -> Frame:
    if isinstance(value, Frame):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return Frame(rgb=value[0], camera_info=value[1])
    if isinstance(value, tuple) and len(value) == 3:
        return Frame(rgb=value[0], depth=value[1], camera_info=value[2])
    raise EpisodeBagError(f'{what} must be a Frame, (rgb, camera_info) or '
                          f'(rgb, depth, camera_info), got {type(value).__name__}')


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray)


class EpisodeBagWriter:
    """
    Writes episode bags; keep one for the node's life (the type store is built once).

    `compress` (default): MCAP chunks compressed with zstd, as `ros2 bag record
    --storage-preset-profile zstd_fast` writes them; rosbag2, the mcap tools and rosbags read them
    as they are (the bag's metadata names no compression: it is inside the storage file).
    """

    def __init__(self, namespace: str = NAMESPACE,
                 msg_dir: Optional[Union[str, os.PathLike]] = None, compress: bool = True):
        self.namespace = '/' + namespace.strip('/') if namespace.strip('/') else ''
        self.store = episode_typestore(msg_dir)
        self.compress = bool(compress)

    def topic(self, role: str) -> str:
        """Return the full topic name of a role (see TOPICS)."""
        return f'{self.namespace}/{TOPICS[role][0]}'

    def _frame_messages(self, frame: Frame, fallback_ns: int) -> List[Tuple[str, int, Any]]:
        out = []
        rgb = frame.rgb
        if rgb is None:
            return out
        if _is_array(rgb):
            fields = image_fields(rgb)
            if fields['encoding'] != 'rgb8':
                raise EpisodeBagError(f'the colour frame must be (H, W, 3) uint8 RGB, got an '
                                      f'array of shape {rgb.shape} ({rgb.dtype})')
            stamp = frame.stamp_ns if frame.stamp_ns is not None else fallback_ns
            image = build_message(self.store, TOPICS['image'][1],
                                  dict(fields, header=_header(stamp, frame.frame_id)))
        else:
            image = build_message(self.store, TOPICS['image'][1], rgb)
            given = stamp_ns(image.header.stamp)
            stamp = frame.stamp_ns if frame.stamp_ns is not None else (given or fallback_ns)
            image.header.stamp = build_message(self.store, _TIME, stamp)
        frame_id = image.header.frame_id or frame.frame_id
        image.header.frame_id = frame_id
        out.append(('image', stamp, image))
        if frame.depth is not None:
            if _is_array(frame.depth):
                fields = image_fields(frame.depth)
                depth = build_message(self.store, TOPICS['depth'][1],
                                      dict(fields, header=_header(stamp, frame_id)))
            else:
                depth = build_message(self.store, TOPICS['depth'][1], frame.depth)
                depth.header.stamp = build_message(self.store, _TIME, stamp)
            out.append(('depth', stamp, depth))
        info = frame.camera_info
        if info is not None:
            if _is_array(info) or isinstance(info, (list, tuple)):
                k = [float(v) for v in np.asarray(info, dtype=float).reshape(-1)]
                if len(k) != 9:
                    raise EpisodeBagError(f'camera_info as K needs 9 values, got {len(k)}')
                info = {'height': image.height, 'width': image.width,
                        'distortion_model': 'plumb_bob', 'd': [0.0] * 5, 'k': k,
                        'r': [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                        'p': [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]}
            msg = build_message(self.store, TOPICS['camera_info'][1], info)
            msg.header.stamp = build_message(self.store, _TIME, stamp)
            msg.header.frame_id = msg.header.frame_id or frame_id
            out.append(('camera_info', stamp, msg))
        return out

    def _joint_message(self, sample: Any, fallback_ns: int) -> Tuple[str, int, Any]:
        if isinstance(sample, JointSample):
            sample = {'header': {'stamp': sample.stamp_ns}, 'name': sample.names,
                      'position': sample.positions, 'velocity': sample.velocities,
                      'effort': sample.efforts}
        elif isinstance(sample, tuple) and len(sample) == 3:
            sample = {'header': {'stamp': sample[0]}, 'name': sample[1], 'position': sample[2]}
        msg = build_message(self.store, TOPICS['joint_states'][1], sample)
        return 'joint_states', stamp_ns(msg.header.stamp) or fallback_ns, msg

    def write(self, path: Union[str, os.PathLike], *, initial: FrameLike,
              final: Optional[FrameLike] = None, joint_states: Sequence[Any] = (),
              prior: Optional[Message] = None, record: Optional[Message] = None,
              metadata: Optional[Mapping[str, Any]] = None) -> Path:
        """
        Write the episode bag directory `path` atomically; return it.

        FileExistsError if `path` exists; EpisodeBagError (a ValueError) for data that does not
        fit its message type. `record.bag_path` is set to `path` when empty.
        """
        path = Path(path)
        if path.exists():
            raise FileExistsError(f'episode bag {path} exists already; bags are never overwritten')
        now = time.time_ns()
        first = _as_frame(initial, 'initial')
        messages = self._frame_messages(first, now)
        t0 = messages[0][1] if messages else now
        if final is not None:
            messages += self._frame_messages(_as_frame(final, 'final'), max(now, t0 + 1))
        t_end = max((m[1] for m in messages), default=now)
        messages += [self._joint_message(s, t0) for s in joint_states]
        if prior is not None:
            msg = build_message(self.store, TOPICS['prior'][1], prior)
            messages.append(('prior', stamp_ns(msg.header.stamp) or t0, msg))
        if record is not None:
            msg = build_message(self.store, TOPICS['record'][1], record)
            msg.bag_path = msg.bag_path or str(path)
            messages.append(('record', stamp_ns(msg.stamp) or t_end, msg))
        custom = {str(k): v if isinstance(v, str) else json.dumps(v)
                  for k, v in (metadata or {}).items()}
        if metadata:
            text = json.dumps(dict(metadata), sort_keys=True, default=str)
            messages.append(('metadata', t_end, build_message(
                self.store, TOPICS['metadata'][1], {'data': text})))
        messages.sort(key=lambda m: m[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp'))
        try:
            inner = work / path.name
            self._write_bag(inner, messages, custom)
            for file in inner.iterdir():
                with open(file, 'rb') as f:
                    os.fsync(f.fileno())
            _fsync_dir(inner)
            os.rename(inner, path)  # fails rather than replace a bag that appeared meanwhile
            _fsync_dir(path.parent)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return path

    def _write_bag(self, path: Path, messages: List[Tuple[str, int, Any]],
                   custom: Mapping[str, str]) -> None:
        writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        if self.compress:  # zstd chunks of the MCAP file
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        for key, value in custom.items():
            writer.set_custom_data(key, value)
        writer.open()
        try:
            connections = {}
            for role, _, _ in messages:
                if role not in connections:
                    connections[role] = writer.add_connection(
                        self.topic(role), TOPICS[role][1], typestore=self.store)
            for role, stamp, msg in messages:
                data = self.store.serialize_cdr(msg, TOPICS[role][1])
                writer.write(connections[role], stamp, data)
        except BaseException:
            writer.abort()
            raise
        writer.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_episode_bag(path: Union[str, os.PathLike], *, initial: FrameLike,
                      final: Optional[FrameLike] = None, joint_states: Sequence[Any] = (),
                      prior: Optional[Message] = None, record: Optional[Message] = None,
                      metadata: Optional[Mapping[str, Any]] = None,
                      namespace: str = NAMESPACE,
                      msg_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Write one episode bag (see EpisodeBagWriter.write); return its path."""
    return EpisodeBagWriter(namespace, msg_dir).write(
        path, initial=initial, final=final, joint_states=joint_states, prior=prior,
        record=record, metadata=metadata)



"""The agent's spool: frames on disk from the moment they are accepted until the collector acks them.

Layout under the spool directory:
  segments/<id:020d>.seg   append-only records: header (magic, body length, crc32) + a Frame
  cursor                   "<segment id> <offset>" (fixed width): where the first unacked record starts

The magic is the format's version: FRY2 records (this one), and FRY1 records (the format before,
whose header also carried a producer's `mark`, now ignored) are still read, so frames an older
agent spooled are delivered after an upgrade; a segment of a newer format is refused with a
message rather than cut off as a torn tail. A segment holds the records of one process only.

Acks arrive in spool order (the sender sends in order and acks come in order), so the acked
frames are always a prefix: the cursor is the whole ack state. A crash can leave the cursor
behind (acked frames are resent and the collector answers DUPLICATE) but never ahead, because
the cursor is made durable before any segment is deleted. A torn tail (a record cut short by
SIGKILL or power loss, or failing its checksum) is cut off on open; nothing before it is lost.

The bound is the smaller of `max_bytes` and what the filesystem has room for: the spool's own
bytes plus the free space, minus a reserve (`reserve_bytes`: 5% of the filesystem, at most
64 MiB), read before each append. Past it the oldest segment is dropped and its unacked frames
counted as dropped. A write that still finds the disk full (ENOSPC, EDQUOT: another process took
the space) is cut back and tried again after dropping the oldest segment, and the frame itself is
dropped and counted when nothing older is left: a full disk costs the oldest frames, never the
process. The cursor is rewritten in place (a fixed-width record, one pwrite into the block it
already has, fsynced), so acking, and with it draining, never needs a free block.

Thread-safe: the pipeline thread appends, the sender (event loop) reads and acks. A producer
that records something about each frame it appends (the synthetic source's progress) does so
holding `lock`, so no reader sees the frame before the record is written.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ferry.agent import selfmetrics as m
from ferry.runtime.config import ConfigError, setting
from ferry.v1 import ingest_pb2
from ferry.wire.frames import pack_frame

log = logging.getLogger("ferry.agent.spool")

MAGIC = b"FRY2"
HEADER = struct.Struct("<4sII")  # magic, body length, crc32(body)
V1_MAGIC = b"FRY1"
V1_HEADER = struct.Struct("<4sIIQ")  # magic, body length, crc32(mark + body), mark
MAX_RECORD = 256 * 1024 * 1024
FSYNC_POLICIES = ("frame", "interval")
CURSOR_BYTES = 42  # "<segment> <offset>", space-padded, "\n": within one sector, a pwrite is not torn
MAX_RESERVE_BYTES = 64 * 1024 * 1024
_FULL = (errno.ENOSPC, errno.EDQUOT)


def reserve_bytes(directory: Path) -> int:
    """Free space the spool leaves on its filesystem: 5% of it, at most 64 MiB."""
    st = os.statvfs(directory)
    return min(MAX_RESERVE_BYTES, st.f_blocks * st.f_frsize // 20)


def free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


@dataclass(frozen=True, slots=True)
class Entry:
    pos: int  # position in this process's view of the spool: increases with every record
    segment: int
    offset: int
    length: int  # header + body
    epoch: int
    seq: int
    points: int
    header: int = HEADER.size  # bytes before the Frame (an FRY1 record's are more)


class SpoolError(RuntimeError):
    pass


class Spool:
    def __init__(
        self,
        directory: str | Path,
        agent_id: str,
        max_bytes: int = 512 * 1024 * 1024,
        segment_bytes: int = 8 * 1024 * 1024,
        fsync: str = "frame",
        fsync_interval_s: float = 1.0,
        on_append: Callable[[], None] | None = None,
    ):
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"spool fsync policy {fsync!r} is not one of {', '.join(FSYNC_POLICIES)}")
        self.dir = Path(directory)
        self.segments_dir = self.dir / "segments"
        self.agent_id = agent_id
        self.max_bytes = max_bytes
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes // 4))
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self.on_append = on_append
        self.epoch = secrets.randbits(64) or 1  # new per open: seq restarts safely at 1
        self._next_seq = 1
        self._lock = threading.RLock()
        self._entries: deque[Entry] = deque()
        self._seg_bytes: dict[int, int] = {}  # live segment id -> bytes from its first live record to its end
        self._next_pos = 1
        self._writer: int | None = None  # the active segment's descriptor (appends by os.write)
        self._writer_size = 0
        self._writer_seg = 0
        self._cursor_fd: int | None = None
        self._last_sync = time.monotonic()
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        self.reserve_bytes = reserve_bytes(self.dir)
        self._open()

    # -- opening -----------------------------------------------------------------------------

    def _open(self) -> None:
        cur_seg, cur_off = self._read_cursor()
        segs = sorted(int(p.stem) for p in self.segments_dir.glob("*.seg") if p.stem.isdigit())
        for seg in segs:
            path = self._path(seg)
            if seg < cur_seg:
                path.unlink()  # fully acked before the last stop
                continue
            start = cur_off if seg == cur_seg else 0
            self._scan(seg, start)
        last = max(segs, default=0)
        self._writer_seg = max(last, cur_seg) + 1  # never append to a segment written by an earlier process
        first = self._entries[0] if self._entries else None
        self._open_cursor(*((first.segment, first.offset) if first else (cur_seg, cur_off)))
        m.SPOOL_FRAMES.set(len(self._entries))
        m.SPOOL_BYTES.set(self.bytes)
        if self._entries:
            log.info(
                "spool %s: %d unacked frames (%d bytes) to resend", self.dir, len(self._entries), self.bytes
            )

    def _scan(self, seg: int, start: int) -> None:
        path = self._path(seg)
        data = path.read_bytes()
        offset = start
        while offset < len(data):
            entry = self._parse(seg, data, offset)
            if entry is None:
                torn = len(data) - offset
                log.warning(
                    "spool segment %s: cutting %d bytes of torn or corrupt tail at offset %d",
                    path.name,
                    torn,
                    offset,
                )
                m.SPOOL_TORN_BYTES.inc(torn)
                with path.open("r+b") as fh:
                    fh.truncate(offset)
                    os.fsync(fh.fileno())
                break
            self._entries.append(entry)
            self._seg_bytes[seg] = self._seg_bytes.get(seg, 0) + entry.length
            offset += entry.length
        if seg not in self._seg_bytes:
            path.unlink()  # nothing live in it

    def _parse(self, seg: int, data: bytes, offset: int) -> Entry | None:
        magic = data[offset : offset + 4]
        if magic == V1_MAGIC:
            header = V1_HEADER
        elif magic[:3] == MAGIC[:3] and magic[3:].isdigit() and magic > MAGIC:
            raise SpoolError(
                f"spool segment {self._path(seg)} holds records of format {magic.decode()}, newer than "
                f"this agent's {MAGIC.decode()}: run the newer agent to deliver them, or move the spool away"
            )
        else:
            header = HEADER
        if offset + header.size > len(data):
            return None
        magic, length, crc, *mark = header.unpack_from(data, offset)
        end = offset + header.size + length
        if magic not in (MAGIC, V1_MAGIC) or length > MAX_RECORD or end > len(data):
            return None
        body = data[offset + header.size : end]
        if zlib.crc32(body, zlib.crc32(struct.pack("<Q", *mark)) if mark else 0) != crc:
            return None
        frame = ingest_pb2.Frame()
        try:
            frame.ParseFromString(body)
        except Exception:
            return None
        entry = Entry(
            self._next_pos, seg, offset, end - offset, frame.epoch, frame.seq, frame.point_count, header.size
        )
        self._next_pos += 1
        return entry

    def _read_cursor(self) -> tuple[int, int]:
        try:
            fields = (self.dir / "cursor").read_text().split()
            if len(fields) not in (2, 3):  # an FRY1 spool's cursor had a third field, the mark
                raise ValueError(f"{len(fields)} fields, not <segment> <offset>")
            seg, off = int(fields[0]), int(fields[1])
        except FileNotFoundError:
            return 0, 0
        except ValueError as exc:
            raise SpoolError(f"spool cursor {self.dir / 'cursor'} is unreadable: {exc}") from None
        return seg, off

    # -- appending ---------------------------------------------------------------------------

    def append(self, payload: bytes, point_count: int) -> ingest_pb2.Frame:
        """Pack `payload` as the next frame of this epoch and make it durable (per the fsync
        policy). On a disk too full for it even with every older frame dropped, the frame is
        dropped and counted (it takes its seq all the same)."""
        with self._lock:
            frame = pack_frame(self.agent_id, self.epoch, self._next_seq, payload, point_count)
            self._next_seq += 1
            body = frame.SerializeToString()
            record = HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body
            m.FRAMES_QUEUED.inc()
            offset = self._write(record)
            if offset is None:
                self._count_dropped(
                    1, point_count, f"frame {frame.seq} of {len(record)} bytes: no room on disk"
                )
            else:
                entry = Entry(
                    self._next_pos,
                    self._writer_seg,
                    offset,
                    len(record),
                    frame.epoch,
                    frame.seq,
                    point_count,
                )
                self._next_pos += 1
                self._entries.append(entry)
                self._seg_bytes[self._writer_seg] = self._seg_bytes.get(self._writer_seg, 0) + len(record)
                self._enforce_bound(self.bound())
            self._gauges()
        if self.on_append is not None:
            self.on_append()
        return frame

    def bound(self) -> int:
        """What the spool may hold now: `max_bytes`, or less when the filesystem has less room."""
        return min(self.max_bytes, self.bytes + free_bytes(self.dir) - self.reserve_bytes)

    def _write(self, record: bytes) -> int | None:
        """Append `record` to the active segment; its offset, or None when there is no room
        for it even after dropping every older frame."""
        self._enforce_bound(self.bound() - len(record))
        while True:
            fd = self._segment_for(len(record))
            offset = self._writer_size
            try:
                _write_all(fd, record)
                now = time.monotonic()
                if self.fsync == "frame" or now - self._last_sync >= self.fsync_interval_s:
                    os.fsync(fd)
                    self._last_sync = now
            except OSError as exc:
                if exc.errno not in _FULL:
                    raise
                os.ftruncate(fd, offset)  # give back the blocks a partial write took
                if not self._drop_oldest("the disk is full"):
                    return None
                continue
            self._writer_size += len(record)
            return offset

    def _segment_for(self, size: int) -> int:
        # segments of at most a quarter of the bound, so dropping the oldest frees a part of it
        limit = max(4096, min(self.segment_bytes, self.bound() // 4))
        if self._writer is not None and self._writer_size and self._writer_size + size > limit:
            self._close_writer()
            self._writer_seg += 1
        if self._writer is None:
            path = self._path(self._writer_seg)
            self._writer = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            self._writer_size = os.fstat(self._writer).st_size
            if self.fsync == "frame":
                _fsync_dir(self.segments_dir)
        return self._writer

    def _close_writer(self) -> None:
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None
            self._writer_size = 0

    def _enforce_bound(self, bound: int) -> None:
        while self.bytes > bound and self._drop_oldest(f"spool over {bound} bytes", keep_active=True):
            pass

    def _drop_oldest(self, why: str, keep_active: bool = False) -> bool:
        """Drop the oldest segment and count its unacked frames; False when there is none (or,
        with `keep_active`, only the segment being appended to)."""
        if not self._seg_bytes or (keep_active and set(self._seg_bytes) == {self._writer_seg}):
            return False
        oldest = min(self._seg_bytes)
        dropped = [e for e in self._entries if e.segment == oldest]
        if dropped:
            self._forget_through(dropped[-1])
            self._count_dropped(len(dropped), sum(e.points for e in dropped), f"{why}: segment {oldest}")
        if oldest == self._writer_seg:  # its frames are gone: start a new segment, free this one
            self._close_writer()
            self._writer_seg += 1
        self._seg_bytes.pop(oldest, None)
        self._path(oldest).unlink(missing_ok=True)
        return True

    def _count_dropped(self, frames: int, points: int, why: str) -> None:
        m.SPOOL_DROPPED_FRAMES.inc(frames)
        m.SPOOL_DROPPED_POINTS.inc(points)
        log.warning("%s: dropped %d unsent frames (%d points)", why, frames, points)

    # -- reading and acking -----------------------------------------------------------------

    def next_after(self, pos: int) -> tuple[int, ingest_pb2.Frame] | None:
        """The oldest live frame whose position is greater than `pos`, read back from disk."""
        with self._lock:
            entry = self._at(max(pos + 1, self._entries[0].pos) if self._entries else pos + 1)
            if entry is None:
                return None
            with self._path(entry.segment).open("rb") as fh:
                fh.seek(entry.offset + entry.header)
                body = fh.read(entry.length - entry.header)
        frame = ingest_pb2.Frame()
        frame.ParseFromString(body)
        return entry.pos, frame

    def ack(self, pos: int) -> Entry | None:
        """Forget the frame at `pos` and everything before it (acks come in order)."""
        with self._lock:
            entry = self._at(pos)
            if entry is None:
                return None  # already gone (dropped past the bound)
            self._forget_through(entry)
            self._gauges()
            return entry

    def _forget_through(self, last: Entry) -> None:
        while self._entries and self._entries[0].pos <= last.pos:
            e = self._entries.popleft()
            self._seg_bytes[e.segment] -= e.length
        done = [
            s for s in self._seg_bytes if s < last.segment or (s == last.segment and self._seg_bytes[s] == 0)
        ]
        if self._entries:
            first = self._entries[0]
            cursor = (first.segment, first.offset)
        else:
            cursor = (last.segment, last.offset + last.length)
        if done and cursor[0] == last.segment and last.segment in done and last.segment == self._writer_seg:
            done.remove(last.segment)  # the active segment stays open for appends
        # durable before any deletion, so a crash can never leave the cursor ahead of the data
        self._write_cursor(*cursor, durable=bool(done))
        for seg in done:
            self._seg_bytes.pop(seg, None)
            self._path(seg).unlink(missing_ok=True)

    def _open_cursor(self, seg: int, offset: int) -> None:
        """Open the cursor file for rewriting in place, in the fixed-width form (an older
        agent's cursor is rewritten once; a new one takes its only block now)."""
        path = self.dir / "cursor"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            while True:
                try:
                    os.pwrite(fd, _cursor_record(seg, offset), 0)
                    os.ftruncate(fd, CURSOR_BYTES)
                    os.fsync(fd)
                    break
                except OSError as exc:  # a full disk and no cursor yet: room is made as for a frame
                    if exc.errno not in _FULL or not self._drop_oldest("the disk is full"):
                        raise
                    first = self._entries[0] if self._entries else None
                    seg, offset = (first.segment, first.offset) if first else (self._writer_seg, 0)
        except BaseException:
            os.close(fd)
            raise
        _fsync_dir(self.dir)
        self._cursor_fd = fd

    def _write_cursor(self, seg: int, offset: int, durable: bool) -> None:
        if self._cursor_fd is None:  # while opening (dropping to make room for the cursor)
            return
        os.pwrite(self._cursor_fd, _cursor_record(seg, offset), 0)
        if durable:
            os.fsync(self._cursor_fd)

    def _at(self, pos: int) -> Entry | None:
        """Positions are contiguous (appends at the back, removal only at the front): O(1) lookup."""
        if not self._entries:
            return None
        index = pos - self._entries[0].pos
        return self._entries[index] if 0 <= index < len(self._entries) else None

    # -- state -------------------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        """Held while appending, reading and acking; reentrant, so a producer may append under it."""
        return self._lock

    def frames(self) -> list[ingest_pb2.Frame]:
        """Every unacked frame, oldest first (read back from disk)."""
        out, pos = [], 0
        while (got := self.next_after(pos)) is not None:
            pos, frame = got
            out.append(frame)
        return out

    @property
    def bytes(self) -> int:
        return sum(self._seg_bytes.values())

    def __len__(self) -> int:
        return len(self._entries)

    def _gauges(self) -> None:
        m.SPOOL_FRAMES.set(len(self._entries))
        m.SPOOL_BYTES.set(self.bytes)

    def _path(self, seg: int) -> Path:
        return self.segments_dir / f"{seg:020d}.seg"

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                os.fsync(self._writer)
                self._close_writer()
            if self._cursor_fd is not None:
                os.close(self._cursor_fd)
                self._cursor_fd = None


def _cursor_record(seg: int, offset: int) -> bytes:
    return f"{seg} {offset}".ljust(CURSOR_BYTES - 1).encode() + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class SpoolConfig:
    """The spool: frames on disk until the collector acks them."""

    spool: str = setting(
        "/var/lib/ferry/spool", "str", "spool directory: frames wait here until acked", metavar="DIR"
    )
    spool_max_bytes: int = setting(
        512 * 1024 * 1024,
        "int",
        "spool size bound (less when its filesystem has less room: free space minus a reserve of 1/20 of "
        "it, at most 64 MiB); past it the oldest unacked frames are dropped and counted",
    )
    spool_fsync: str = setting(
        "frame", "choice", "fsync each frame, or at most every spool_fsync_interval", choices=FSYNC_POLICIES
    )
    spool_fsync_interval: float = setting(1.0, "duration", "with spool_fsync=interval", metavar="DUR")

    def check(self) -> None:
        if self.spool_max_bytes < 64 * 1024:
            raise ConfigError(f"spool_max_bytes {self.spool_max_bytes} must be >= 65536")


def build(cfg: SpoolConfig, agent_id: str, on_append: Callable[[], None] | None = None) -> Spool:
    return Spool(
        cfg.spool,
        agent_id,
        cfg.spool_max_bytes,
        fsync=cfg.spool_fsync,
        fsync_interval_s=cfg.spool_fsync_interval,
        on_append=on_append,
    )

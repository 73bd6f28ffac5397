"""A real SIP phone for tests: liblinphone 5.1 (Debian ``liblinphone10``) driven through ctypes.

liblinphone is not thread-safe, so one worker thread owns every core in the process: it runs
each command and calls ``linphone_core_iterate`` on every core about every 10 ms. The phone's
callbacks (call state, registration, real-time text) run on that thread and only append to
Python records, which tests read from any thread or await with :meth:`LinphonePhone.wait_for`.

Media never touches a sound card: the core streams from and to files
(``linphone_core_set_use_files``): a WAV played as the microphone and a WAV recording of what
the phone hears. Real-time text is RFC 4103 (T.140 with RED, RFC 2198) in liblinphone's text
stream, one character per ``linphone_chat_message_put_char``.

Prototypes follow the C headers of liblinphone-dev 5.1.65 (``linphone/api/c-*.h``,
``linphone/core.h``, ``linphone/call_params.h``, ``linphone/logging.h``); every function used has
its ``restype`` and ``argtypes`` declared, pointers as ``c_void_p`` so 64-bit values survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import enum
import math
import queue
import re
import socket
import struct
import threading
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

LIBRARY = "liblinphone.so.10"

# C types (bool_t is an unsigned char in bctoolbox/port.h).
_P = ctypes.c_void_p
_S = ctypes.c_char_p
_BOOL = ctypes.c_ubyte
_INT = ctypes.c_int

_CALL_STATE_CB = ctypes.CFUNCTYPE(None, _P, _P, _INT, _S)  # LinphoneCoreCbsCallStateChangedCb
_ACCOUNT_STATE_CB = ctypes.CFUNCTYPE(None, _P, _P, _INT, _S)  # ...AccountRegistrationStateChangedCb
_COMPOSING_CB = ctypes.CFUNCTYPE(None, _P, _P)  # LinphoneCoreCbsIsComposingReceivedCb
_DTMF_CB = ctypes.CFUNCTYPE(None, _P, _P, _INT)  # LinphoneCoreCbsDtmfReceivedCb


class CallState(enum.IntEnum):
    """``LinphoneCallState`` (linphone/enums/call-enums.h)."""

    IDLE = 0
    INCOMING_RECEIVED = 1
    PUSH_INCOMING_RECEIVED = 2
    OUTGOING_INIT = 3
    OUTGOING_PROGRESS = 4
    OUTGOING_RINGING = 5
    OUTGOING_EARLY_MEDIA = 6
    CONNECTED = 7
    STREAMS_RUNNING = 8
    PAUSING = 9
    PAUSED = 10
    RESUMING = 11
    REFERRED = 12
    ERROR = 13
    END = 14
    PAUSED_BY_REMOTE = 15
    UPDATED_BY_REMOTE = 16
    INCOMING_EARLY_MEDIA = 17
    UPDATING = 18
    RELEASED = 19
    EARLY_UPDATED_BY_REMOTE = 20
    EARLY_UPDATING = 21


class RegistrationState(enum.IntEnum):
    """``LinphoneRegistrationState`` (linphone/types.h)."""

    NONE = 0
    PROGRESS = 1
    OK = 2
    CLEARED = 3
    FAILED = 4


class MediaEncryption(enum.IntEnum):
    """``LinphoneMediaEncryption`` (linphone/types.h)."""

    NONE = 0
    SRTP = 1
    ZRTP = 2
    DTLS = 3


class _LogLevel(enum.IntFlag):
    """``LinphoneLogLevel`` (linphone/logging.h)."""

    DEBUG = 1
    TRACE = 2
    MESSAGE = 4
    WARNING = 8
    ERROR = 16
    FATAL = 32


class LinphoneUnavailable(RuntimeError):
    """liblinphone cannot be loaded (Debian package ``liblinphone10`` missing)."""


def available() -> bool:
    """Whether liblinphone can be loaded here."""
    try:
        ctypes.CDLL(LIBRARY)
    except OSError:
        return False
    return True


class _Api:
    """The ctypes prototypes of every liblinphone and bctoolbox function this driver calls."""

    def __init__(self, lib: ctypes.CDLL, bctbx: ctypes.CDLL) -> None:
        def fn(name: str, restype: Any, *argtypes: Any, where: ctypes.CDLL = lib) -> Any:
            function = getattr(where, name)
            function.restype = restype
            function.argtypes = list(argtypes)
            return function

        # bctoolbox/logging.h: the default handler prints to stdout; NULL silences it.
        self.bctbx_set_log_handler: Callable[[int | None], None] = fn(
            "bctbx_set_log_handler", None, _P, where=bctbx
        )
        self.bctbx_create_file_log_handler: Callable[[int, bytes, bytes], int | None] = fn(
            "bctbx_create_file_log_handler", _P, ctypes.c_uint64, _S, _S, where=bctbx
        )
        self.bctbx_add_log_handler: Callable[[int], None] = fn(
            "bctbx_add_log_handler", None, _P, where=bctbx
        )
        self.bctbx_remove_log_handler: Callable[[int], None] = fn(
            "bctbx_remove_log_handler", None, _P, where=bctbx
        )
        # linphone/logging.h
        self.logging_service_get: Callable[[], int | None] = fn("linphone_logging_service_get", _P)
        self.logging_service_set_log_level: Callable[[int, int], None] = fn(
            "linphone_logging_service_set_log_level", None, _P, _INT
        )
        # linphone/api/c-factory.h
        self.factory_get: Callable[[], int | None] = fn("linphone_factory_get", _P)
        self.factory_create_core_3: Callable[[int, bytes, bytes | None, int | None], int | None] = (
            fn("linphone_factory_create_core_3", _P, _P, _S, _S, _P)
        )
        self.factory_set_data_dir: Callable[[int, bytes], None] = fn(
            "linphone_factory_set_data_dir", None, _P, _S
        )
        self.factory_create_core_cbs: Callable[[int], int | None] = fn(
            "linphone_factory_create_core_cbs", _P, _P
        )
        self.factory_create_address: Callable[[int, bytes], int | None] = fn(
            "linphone_factory_create_address", _P, _P, _S
        )
        self.factory_create_auth_info: Callable[
            [int, bytes, bytes | None, bytes, bytes | None, bytes | None, bytes | None],
            int | None,
        ] = fn("linphone_factory_create_auth_info", _P, _P, _S, _S, _S, _S, _S, _S)
        # linphone/callbacks.h
        self.core_cbs_set_call_state_changed: Callable[[int, Any], None] = fn(
            "linphone_core_cbs_set_call_state_changed", None, _P, _CALL_STATE_CB
        )
        self.core_cbs_set_account_registration_state_changed: Callable[[int, Any], None] = fn(
            "linphone_core_cbs_set_account_registration_state_changed", None, _P, _ACCOUNT_STATE_CB
        )
        self.core_cbs_set_is_composing_received: Callable[[int, Any], None] = fn(
            "linphone_core_cbs_set_is_composing_received", None, _P, _COMPOSING_CB
        )
        self.core_cbs_set_dtmf_received: Callable[[int, Any], None] = fn(
            "linphone_core_cbs_set_dtmf_received", None, _P, _DTMF_CB
        )
        self.core_cbs_unref: Callable[[int], None] = fn("linphone_core_cbs_unref", None, _P)
        # linphone/core.h
        self.core_add_callbacks: Callable[[int, int], None] = fn(
            "linphone_core_add_callbacks", None, _P, _P
        )
        self.core_start: Callable[[int], int] = fn("linphone_core_start", _INT, _P)
        self.core_iterate: Callable[[int], None] = fn("linphone_core_iterate", None, _P)
        self.core_stop: Callable[[int], None] = fn("linphone_core_stop", None, _P)
        self.core_unref: Callable[[int], None] = fn("linphone_core_unref", None, _P)
        self.core_set_network_reachable: Callable[[int, int], None] = fn(
            "linphone_core_set_network_reachable", None, _P, _BOOL
        )
        self.core_enable_ipv6: Callable[[int, int], None] = fn(
            "linphone_core_enable_ipv6", None, _P, _BOOL
        )
        self.core_set_use_files: Callable[[int, int], None] = fn(
            "linphone_core_set_use_files", None, _P, _BOOL
        )
        self.core_set_play_file: Callable[[int, bytes | None], None] = fn(
            "linphone_core_set_play_file", None, _P, _S
        )
        self.core_set_record_file: Callable[[int, bytes | None], None] = fn(
            "linphone_core_set_record_file", None, _P, _S
        )
        self.core_set_user_agent: Callable[[int, bytes, bytes], None] = fn(
            "linphone_core_set_user_agent", None, _P, _S, _S
        )
        self.core_create_call_params: Callable[[int, int | None], int | None] = fn(
            "linphone_core_create_call_params", _P, _P, _P
        )
        self.core_invite_with_params: Callable[[int, bytes, int], int | None] = fn(
            "linphone_core_invite_with_params", _P, _P, _S, _P
        )
        self.core_create_account_params: Callable[[int], int | None] = fn(
            "linphone_core_create_account_params", _P, _P
        )
        self.core_create_account: Callable[[int, int], int | None] = fn(
            "linphone_core_create_account", _P, _P, _P
        )
        self.core_add_account: Callable[[int, int], int] = fn(
            "linphone_core_add_account", _INT, _P, _P
        )
        self.core_set_default_account: Callable[[int, int], None] = fn(
            "linphone_core_set_default_account", None, _P, _P
        )
        self.core_add_auth_info: Callable[[int, int], None] = fn(
            "linphone_core_add_auth_info", None, _P, _P
        )
        # linphone/api/c-account-params.h, c-account.h, c-address.h, c-auth-info.h
        self.account_params_set_identity_address: Callable[[int, int], int] = fn(
            "linphone_account_params_set_identity_address", _INT, _P, _P
        )
        self.account_params_set_server_addr: Callable[[int, bytes], int] = fn(
            "linphone_account_params_set_server_addr", _INT, _P, _S
        )
        self.account_params_set_register_enabled: Callable[[int, int], None] = fn(
            "linphone_account_params_set_register_enabled", None, _P, _BOOL
        )
        self.account_params_unref: Callable[[int], None] = fn(
            "linphone_account_params_unref", None, _P
        )
        self.account_get_state: Callable[[int], int] = fn("linphone_account_get_state", _INT, _P)
        self.account_unref: Callable[[int], None] = fn("linphone_account_unref", None, _P)
        self.address_unref: Callable[[int], None] = fn("linphone_address_unref", None, _P)
        self.auth_info_unref: Callable[[int], None] = fn("linphone_auth_info_unref", None, _P)
        # linphone/call_params.h
        self.call_params_enable_realtime_text: Callable[[int, int], int] = fn(
            "linphone_call_params_enable_realtime_text", _INT, _P, _BOOL
        )
        self.call_params_realtime_text_enabled: Callable[[int], int] = fn(
            "linphone_call_params_realtime_text_enabled", _BOOL, _P
        )
        self.call_params_enable_audio: Callable[[int, int], None] = fn(
            "linphone_call_params_enable_audio", None, _P, _BOOL
        )
        self.call_params_enable_video: Callable[[int, int], None] = fn(
            "linphone_call_params_enable_video", None, _P, _BOOL
        )
        self.call_params_video_enabled: Callable[[int], int] = fn(
            "linphone_call_params_video_enabled", _BOOL, _P
        )
        self.call_params_set_media_encryption: Callable[[int, int], None] = fn(
            "linphone_call_params_set_media_encryption", None, _P, _INT
        )
        self.call_params_get_media_encryption: Callable[[int], int] = fn(
            "linphone_call_params_get_media_encryption", _INT, _P
        )
        self.call_params_enable_mandatory_media_encryption: Callable[[int, int], None] = fn(
            "linphone_call_params_enable_mandatory_media_encryption", None, _P, _BOOL
        )
        self.call_params_get_used_audio_payload_type: Callable[[int], int | None] = fn(
            "linphone_call_params_get_used_audio_payload_type", _P, _P
        )
        self.call_params_unref: Callable[[int], None] = fn("linphone_call_params_unref", None, _P)
        self.payload_type_get_mime_type: Callable[[int], bytes | None] = fn(
            "linphone_payload_type_get_mime_type", _S, _P
        )
        # linphone/api/c-call.h
        self.call_ref: Callable[[int], int | None] = fn("linphone_call_ref", _P, _P)
        self.call_unref: Callable[[int], None] = fn("linphone_call_unref", None, _P)
        self.call_get_state: Callable[[int], int] = fn("linphone_call_get_state", _INT, _P)
        self.call_accept_with_params: Callable[[int, int], int] = fn(
            "linphone_call_accept_with_params", _INT, _P, _P
        )
        self.call_terminate: Callable[[int], int] = fn("linphone_call_terminate", _INT, _P)
        self.call_pause: Callable[[int], int] = fn("linphone_call_pause", _INT, _P)
        self.call_resume: Callable[[int], int] = fn("linphone_call_resume", _INT, _P)
        self.call_send_dtmfs: Callable[[int, bytes], int] = fn(
            "linphone_call_send_dtmfs", _INT, _P, _S
        )
        self.call_get_current_params: Callable[[int], int | None] = fn(
            "linphone_call_get_current_params", _P, _P
        )
        self.call_get_chat_room: Callable[[int], int | None] = fn(
            "linphone_call_get_chat_room", _P, _P
        )
        self.call_get_error_info: Callable[[int], int | None] = fn(
            "linphone_call_get_error_info", _P, _P
        )
        self.error_info_get_protocol_code: Callable[[int], int] = fn(
            "linphone_error_info_get_protocol_code", _INT, _P
        )
        self.call_get_audio_stats: Callable[[int], int | None] = fn(
            "linphone_call_get_audio_stats", _P, _P
        )
        self.call_stats_get_download_bandwidth: Callable[[int], float] = fn(
            "linphone_call_stats_get_download_bandwidth", ctypes.c_float, _P
        )
        self.call_stats_get_upload_bandwidth: Callable[[int], float] = fn(
            "linphone_call_stats_get_upload_bandwidth", ctypes.c_float, _P
        )
        self.call_stats_unref: Callable[[int], None] = fn("linphone_call_stats_unref", None, _P)
        # linphone/api/c-chat-room.h, c-chat-message.h
        self.chat_room_create_empty_message: Callable[[int], int | None] = fn(
            "linphone_chat_room_create_empty_message", _P, _P
        )
        self.chat_room_get_char: Callable[[int], int] = fn(
            "linphone_chat_room_get_char", ctypes.c_uint32, _P
        )
        self.chat_message_put_char: Callable[[int, int], int] = fn(
            "linphone_chat_message_put_char", _INT, _P, ctypes.c_uint32
        )
        self.chat_message_unref: Callable[[int], None] = fn("linphone_chat_message_unref", None, _P)


class _Worker(threading.Thread):
    """The one thread that calls into liblinphone: runs commands and iterates every core."""

    TICK = 0.01

    def __init__(self) -> None:
        super().__init__(name="liblinphone", daemon=True)
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self.phones: list[LinphonePhone] = []
        self.api: _Api | None = None
        self.factory = 0
        self._log_handler = 0
        self._ready: Future[None] = Future()

    def start_and_load(self) -> None:
        self.start()
        self._ready.result(timeout=10)

    def run(self) -> None:
        try:
            lib = ctypes.CDLL(LIBRARY)
            bctbx = ctypes.CDLL(ctypes.util.find_library("bctoolbox") or "libbctoolbox.so.1")
            self.api = _Api(lib, bctbx)
            self.factory = _nonnull(self.api.factory_get(), "linphone_factory_get")
            self.set_log_file(None)
        except BaseException as exc:  # reported to the starting thread
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        while True:
            deadline = time.monotonic() + self.TICK
            while True:
                try:
                    job, future = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(job())
                    except BaseException as exc:  # handed to the caller
                        future.set_exception(exc)
            for phone in list(self.phones):
                phone._iterate()

    @contextlib.contextmanager
    def muted(self) -> Iterator[None]:
        """Log nothing for a while (then the level ``set_log_file`` chose again)."""
        api = self.api
        assert api is not None
        service = _nonnull(api.logging_service_get(), "linphone_logging_service_get")
        api.logging_service_set_log_level(service, _LogLevel.FATAL)
        try:
            yield
        finally:
            level = _LogLevel.MESSAGE if self._log_handler else _LogLevel.FATAL
            api.logging_service_set_log_level(service, level)

    def set_log_file(self, path: Path | None) -> None:
        """Quiet stdout; log at message level to ``path``, or only fatal errors (nowhere)."""
        api = self.api
        assert api is not None
        service = _nonnull(api.logging_service_get(), "linphone_logging_service_get")
        api.bctbx_set_log_handler(None)
        if self._log_handler:
            api.bctbx_remove_log_handler(self._log_handler)  # closes the file
            self._log_handler = 0
        if path is None:
            api.logging_service_set_log_level(service, _LogLevel.FATAL)
            return
        handler = api.bctbx_create_file_log_handler(
            0, str(path.parent).encode(), path.name.encode()
        )
        self._log_handler = _nonnull(handler, f"bctbx_create_file_log_handler({path})")
        api.bctbx_add_log_handler(self._log_handler)
        api.logging_service_set_log_level(service, _LogLevel.MESSAGE)

    def run_job(self, job: Callable[[], T], timeout: float = 30.0) -> T:
        if threading.current_thread() is self:
            return job()
        future: Future[T] = Future()
        self._jobs.put((job, future))
        return future.result(timeout=timeout)


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _the_worker() -> _Worker:
    global _worker  # noqa: PLW0603 - one liblinphone thread per process
    with _worker_lock:
        if _worker is None:
            worker = _Worker()
            try:
                worker.start_and_load()
            except OSError as exc:
                raise LinphoneUnavailable(f"{LIBRARY}: {exc}") from exc
            _worker = worker
        return _worker


def _nonnull(pointer: int | None, what: str) -> int:
    if not pointer:
        raise RuntimeError(f"{what} returned NULL")
    return pointer


def log_to(path: Path | None) -> None:
    """Send the log of every liblinphone core in this process to ``path``, at message level
    (SIP messages included); None: log nowhere, the default.

    Logging is process-wide in bctoolbox, and its handlers may only change while no core runs
    (media threads log without a lock): call this before creating phones or after closing them.
    """
    worker = _the_worker()

    def job() -> None:
        if worker.phones:
            raise RuntimeError("log_to() while liblinphone cores run")
        worker.set_log_file(path)

    worker.run_job(job)


def free_rtp_port() -> int:
    """An even loopback UDP port whose odd neighbour (RTCP, RFC 3550 §11) is free too."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1]) & ~1
        if port < 1024:
            continue
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtcp,
            ):
                rtp.bind(("127.0.0.1", port))
                rtcp.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class CallInfo:
    """What liblinphone negotiated for the current call (its current call params)."""

    encryption: MediaEncryption
    realtime_text: bool
    video: bool
    audio_codec: str | None
    download_kbps: float
    upload_kbps: float


@dataclass
class Records:
    """What the phone's callbacks saw about its current (or last) call and its registration,
    appended on the liblinphone thread; a new call starts new records."""

    states: list[CallState] = field(default_factory=list)
    registration: list[RegistrationState] = field(default_factory=list)
    text: list[str] = field(default_factory=list)  # one entry per received character
    dtmf: list[str] = field(default_factory=list)  # RFC 4733 events (or SIP INFO) received
    end_code: int | None = None  # SIP status of a failed or ended call, when there was one


class LinphonePhone:
    """One liblinphone core listening on a loopback UDP port, media to and from WAV files.

    Commands (``call``, ``answer``, ``put_text`` …) run on the liblinphone thread and return
    when liblinphone has taken them; what happens next arrives in :attr:`records`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        play: Path | None = None,
        record: Path | None = None,
        user: str = "linphone",
        nortp_timeout: int = 3600,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.user = user
        self.sip_port = free_udp_port()
        self.play = play
        self.record = record
        self.records = Records()
        self._worker = _the_worker()
        self._core = 0
        self._call = 0
        self._account = 0
        self._message = 0
        self._message_call = 0
        self._cbs = 0
        rc = workdir / "linphonerc"
        rc.write_text(
            "[sip]\n"
            f"contact=sip:{user}@127.0.0.1\nguess_hostname=0\n"
            f"sip_port={self.sip_port}\nsip_tcp_port=0\nsip_tls_port=0\n"
            "bind_address=127.0.0.1\nuse_ipv6=0\nping_with_options=0\n"
            "[rtp]\nbind_address=127.0.0.1\n"
            f"audio_rtp_port={free_rtp_port()}\nvideo_rtp_port={free_rtp_port()}\n"
            f"text_rtp_port={free_rtp_port()}\nnortp_timeout={nortp_timeout}\n"
            "[sound]\necho_cancellation=0\n"
            "[video]\ncapture=0\ndisplay=0\nautomatically_initiate=0\nautomatically_accept=0\n"
            "[misc]\nstore_rtt_messages=0\n"
            f"[storage]\nuri={workdir / 'linphone.db'}\n"
        )
        # Callbacks keep Python references for as long as the core lives.
        self._on_call_state = _CALL_STATE_CB(self._call_state_changed)
        self._on_account_state = _ACCOUNT_STATE_CB(self._account_state_changed)
        self._on_composing = _COMPOSING_CB(self._is_composing_received)
        self._on_dtmf = _DTMF_CB(self._dtmf_received)
        self._run(lambda: self._create(rc))

    # --- plumbing -------------------------------------------------------------------------

    @property
    def _api(self) -> _Api:
        assert self._worker.api is not None
        return self._worker.api

    def _run(self, job: Callable[[], T]) -> T:
        return self._worker.run_job(job)

    def _create(self, rc: Path) -> None:
        api = self._api
        # Databases (call history, ZRTP cache) go to the data directory, read at start.
        api.factory_set_data_dir(self._worker.factory, f"{self.workdir}/".encode())
        # Creating a core restores bctoolbox's stdout handler: keep it mute until it is gone.
        with self._worker.muted():
            core = _nonnull(
                api.factory_create_core_3(self._worker.factory, str(rc).encode(), None, None),
                "linphone_factory_create_core_3",
            )
            api.bctbx_set_log_handler(None)
        self._core = core
        cbs = _nonnull(api.factory_create_core_cbs(self._worker.factory), "create_core_cbs")
        api.core_cbs_set_call_state_changed(cbs, self._on_call_state)
        api.core_cbs_set_account_registration_state_changed(cbs, self._on_account_state)
        api.core_cbs_set_is_composing_received(cbs, self._on_composing)
        api.core_cbs_set_dtmf_received(cbs, self._on_dtmf)
        api.core_add_callbacks(core, cbs)
        self._cbs = cbs
        api.core_set_user_agent(core, b"appliance-tests-linphone", b"5.1")
        api.core_enable_ipv6(core, 0)
        api.core_set_use_files(core, 1)
        api.core_set_play_file(core, str(self.play).encode() if self.play else None)
        api.core_set_record_file(core, str(self.record).encode() if self.record else None)
        status = api.core_start(core)
        if status != 0:
            raise RuntimeError(f"linphone_core_start failed ({status})")
        api.core_set_network_reachable(core, 1)
        self._worker.phones.append(self)

    def _iterate(self) -> None:
        if self._core:
            self._api.core_iterate(self._core)

    # --- callbacks (liblinphone thread) ---------------------------------------------------

    def _call_state_changed(self, core: int, call: int, state: int, message: bytes) -> None:
        api = self._api
        try:
            value = CallState(state)
        except ValueError:
            return
        if call != self._call and value in (CallState.INCOMING_RECEIVED, CallState.OUTGOING_INIT):
            self._release_call()
            self._call = _nonnull(api.call_ref(call), "linphone_call_ref")
            self.records = Records(registration=self.records.registration)  # a new call
        if call != self._call:
            return
        if value in (CallState.ERROR, CallState.END):
            info = api.call_get_error_info(call)
            code = api.error_info_get_protocol_code(info) if info else 0
            self.records.end_code = code or self.records.end_code
        self.records.states.append(value)
        if value == CallState.RELEASED:
            self._release_call()

    def _account_state_changed(self, core: int, account: int, state: int, message: bytes) -> None:
        try:
            self.records.registration.append(RegistrationState(state))
        except ValueError:
            return

    def _is_composing_received(self, core: int, chat_room: int) -> None:
        """Drain the characters received by RFC 4103 (``linphone_chat_room_get_char``)."""
        while True:
            character = self._api.chat_room_get_char(chat_room)
            if character == 0:
                return
            self.records.text.append(chr(character))

    def _dtmf_received(self, core: int, call: int, dtmf: int) -> None:
        self.records.dtmf.append(chr(dtmf))

    def _release_call(self) -> None:
        api = self._api
        if self._message:
            api.chat_message_unref(self._message)
            self._message = 0
            self._message_call = 0
        if self._call:
            api.call_unref(self._call)
            self._call = 0

    # --- commands -------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """Where this phone can be called directly."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    def register(self, registrar: str, user: str, password: str, domain: str = "127.0.0.1") -> None:
        """Register ``sip:user@domain`` at ``registrar`` (a SIP URI), answering digest challenges
        (RFC 3261 §22) with ``password``."""
        self.user = user

        def job() -> None:
            api = self._api
            factory = self._worker.factory
            auth = _nonnull(
                api.factory_create_auth_info(
                    factory, user.encode(), None, password.encode(), None, None, None
                ),
                "linphone_factory_create_auth_info",
            )
            api.core_add_auth_info(self._core, auth)
            api.auth_info_unref(auth)
            params = _nonnull(api.core_create_account_params(self._core), "account params")
            identity = _nonnull(
                api.factory_create_address(factory, f"sip:{user}@{domain}".encode()),
                "linphone_factory_create_address",
            )
            try:
                if api.account_params_set_identity_address(params, identity) != 0:
                    raise ValueError(f"identity sip:{user}@{domain} refused")
                if api.account_params_set_server_addr(params, registrar.encode()) != 0:
                    raise ValueError(f"registrar {registrar} refused")
                api.account_params_set_register_enabled(params, 1)
                account = _nonnull(api.core_create_account(self._core, params), "create account")
            finally:
                api.address_unref(identity)
                api.account_params_unref(params)
            if api.core_add_account(self._core, account) != 0:
                api.account_unref(account)
                raise RuntimeError("linphone_core_add_account failed")
            api.core_set_default_account(self._core, account)
            self._account = account

        self._run(job)

    def registration_state(self) -> RegistrationState:
        def job() -> RegistrationState:
            if not self._account:
                return RegistrationState.NONE
            return RegistrationState(self._api.account_get_state(self._account))

        return self._run(job)

    def _params(
        self, call: int | None, *, rtt: bool, srtp: str | None, video: bool, audio: bool = True
    ) -> int:
        api = self._api
        if srtp not in (None, "SDES"):
            raise ValueError(f"srtp={srtp!r}: only 'SDES' (RFC 4568) is driven here")
        params = _nonnull(api.core_create_call_params(self._core, call), "call params")
        if rtt and api.call_params_enable_realtime_text(params, 1) != 0:
            api.call_params_unref(params)
            raise RuntimeError("realtime text refused by liblinphone")
        api.call_params_enable_video(params, 1 if video else 0)
        if not audio:
            api.call_params_enable_audio(params, 0)
        if srtp is not None:
            api.call_params_set_media_encryption(params, MediaEncryption.SRTP)
            api.call_params_enable_mandatory_media_encryption(params, 1)
        return params

    def call(
        self,
        uri: str,
        *,
        rtt: bool = False,
        srtp: str | None = None,
        video: bool = False,
        audio: bool = True,
    ) -> None:
        """INVITE ``uri``: audio unless not ``audio``, RFC 4103 text when ``rtt``, video when
        ``video``; ``srtp="SDES"`` makes SDES-SRTP (RFC 4568, ``RTP/SAVP``) mandatory."""

        def job() -> None:
            api = self._api
            params = self._params(None, rtt=rtt, srtp=srtp, video=video, audio=audio)
            try:
                call = api.core_invite_with_params(self._core, uri.encode(), params)
            finally:
                api.call_params_unref(params)
            if not call:
                raise RuntimeError(f"linphone_core_invite_with_params({uri}) failed")

        self._run(job)

    def answer(self, *, rtt: bool = False, srtp: str | None = None) -> None:
        """Accept the ringing call (200 OK), with text when ``rtt`` and the offer has it."""

        def job() -> None:
            api = self._api
            if not self._call:
                raise RuntimeError("no call to answer")
            params = self._params(self._call, rtt=rtt, srtp=srtp, video=False)
            try:
                status = api.call_accept_with_params(self._call, params)
            finally:
                api.call_params_unref(params)
            if status != 0:
                raise RuntimeError(f"linphone_call_accept_with_params failed ({status})")

        self._run(job)

    def hangup(self) -> None:
        """BYE (or CANCEL/decline, by the call's state)."""

        self._on_call("hang up", lambda api, call: api.call_terminate(call))

    def _on_call(self, what: str, action: Callable[[_Api, int], int]) -> None:
        def job() -> None:
            if not self._call:
                raise RuntimeError(f"no call to {what}")
            status = action(self._api, self._call)
            if status != 0:
                raise RuntimeError(f"{what} failed ({status})")

        self._run(job)

    def pause(self) -> None:
        """Put the call on hold: a re-INVITE with ``a=sendonly`` (RFC 3264 §8.4)."""
        self._on_call("pause", lambda api, call: api.call_pause(call))

    def resume(self) -> None:
        """Take the call off hold (re-INVITE with ``a=sendrecv``)."""
        self._on_call("resume", lambda api, call: api.call_resume(call))

    def send_dtmf(self, digits: str) -> None:
        """Send ``digits`` as RFC 4733 telephone events, one after the other."""
        self._on_call("send DTMF", lambda api, call: api.call_send_dtmfs(call, digits.encode()))

    def put_text(self, text: str) -> None:
        """Type ``text`` into the call's real-time text stream, one character at a time
        (``linphone_chat_message_put_char``; RFC 4103 buffers them for at most 300 ms)."""

        def job() -> None:
            api = self._api
            if not self._call:
                raise RuntimeError("no call to send text in")
            if self._message_call != self._call:
                room = _nonnull(api.call_get_chat_room(self._call), "linphone_call_get_chat_room")
                if self._message:
                    api.chat_message_unref(self._message)
                self._message = _nonnull(api.chat_room_create_empty_message(room), "message")
                self._message_call = self._call
            for character in text:
                if api.chat_message_put_char(self._message, ord(character)) != 0:
                    raise RuntimeError(f"put_char({character!r}) refused: no text stream")

        self._run(job)

    def call_info(self) -> CallInfo | None:
        """The current call's negotiated parameters and audio bandwidth, None without a call."""

        def job() -> CallInfo | None:
            api = self._api
            if not self._call:
                return None
            params = api.call_get_current_params(self._call)
            if not params:
                return None
            payload = api.call_params_get_used_audio_payload_type(params)
            mime = api.payload_type_get_mime_type(payload) if payload else None
            stats = api.call_get_audio_stats(self._call)
            down = up = 0.0
            if stats:
                down = api.call_stats_get_download_bandwidth(stats)
                up = api.call_stats_get_upload_bandwidth(stats)
                api.call_stats_unref(stats)
            return CallInfo(
                encryption=MediaEncryption(api.call_params_get_media_encryption(params)),
                realtime_text=bool(api.call_params_realtime_text_enabled(params)),
                video=bool(api.call_params_video_enabled(params)),
                audio_codec=mime.decode() if mime else None,
                download_kbps=down,
                upload_kbps=up,
            )

        return self._run(job)

    def call_state(self) -> CallState | None:
        def job() -> CallState | None:
            return CallState(self._api.call_get_state(self._call)) if self._call else None

        return self._run(job)

    @property
    def received_text(self) -> str:
        """Every character received by real-time text so far, control characters included."""
        return "".join(self.records.text)

    async def wait_for(
        self, predicate: Callable[[LinphonePhone], bool], timeout: float = 10.0, what: str = ""
    ) -> None:
        """Poll ``predicate(self)`` every 20 ms; TimeoutError naming ``what`` and the records."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            if loop.time() > deadline:
                raise TimeoutError(f"not within {timeout} s: {what} (phone saw {self.records})")
            await asyncio.sleep(0.02)

    async def wait_state(self, state: CallState, timeout: float = 10.0) -> None:
        await self.wait_for(lambda p: state in p.records.states, timeout, f"call {state.name}")

    async def wait_registered(self, timeout: float = 10.0) -> None:
        await self.wait_for(
            lambda p: RegistrationState.OK in p.records.registration, timeout, "registered"
        )

    def close(self) -> None:
        """Hang up, stop and free the core (its sockets close)."""

        def job() -> None:
            api = self._api
            if self in self._worker.phones:
                self._worker.phones.remove(self)
            self._release_call()
            if self._account:
                api.account_unref(self._account)
                self._account = 0
            if self._core:
                api.core_stop(self._core)
                api.core_unref(self._core)
                self._core = 0
            if self._cbs:
                api.core_cbs_unref(self._cbs)
                self._cbs = 0

        self._run(job)


# --- the SIP trace in a log file ---------------------------------------------------------------

_SIP_IN_LOG = re.compile(
    r"channel \[\w+\]: (message sent to|received \[\d+\] new bytes from) \[[^\]]*\][^\n]*\n"
    r"(.*?)(?=^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} |\Z)",
    re.S | re.M,
)


@dataclass(frozen=True)
class SipTrace:
    """One SIP message as the phone sent or received it (from its log, see :func:`log_to`)."""

    sent: bool
    start_line: str
    headers: str
    body: str

    @property
    def status(self) -> int | None:
        """The status code of a response, None for a request."""
        if not self.start_line.startswith("SIP/2.0 "):
            return None
        return int(self.start_line.split()[1])

    @property
    def method(self) -> str:
        """The request's method, or for a response the method its CSeq names."""
        if self.status is None:
            return self.start_line.split(" ", 1)[0]
        return (self.header("CSeq") or " ").split()[-1]

    def header(self, name: str) -> str | None:
        match = re.search(rf"^{re.escape(name)}:[ \t]*(.*)$", self.headers, re.M | re.I)
        return match.group(1).strip() if match else None


def sip_trace(log: Path) -> list[SipTrace]:
    """Every SIP message belle-sip logged at message level, in order."""
    messages = []
    for direction, text in _SIP_IN_LOG.findall(log.read_text(errors="replace")):
        head, _, body = text.replace("\r\n", "\n").partition("\n\n")
        start, _, headers = head.partition("\n")
        sent = direction.startswith("message sent")
        messages.append(SipTrace(sent, start, headers, body.strip("\n")))
    return messages


# --- audio files ------------------------------------------------------------------------------


def write_tone(path: Path, frequency: float, seconds: float = 30.0, rate: int = 8000) -> Path:
    """A mono 16-bit WAV sine, the phone's microphone (the file player wants 16-bit linear)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(
            struct.pack("<h", int(12000 * math.sin(2 * math.pi * frequency * n / rate)))
            for n in range(int(seconds * rate))
        ))  # fmt: skip
    return path


def read_samples(path: Path) -> tuple[list[int], int]:
    """The 16-bit mono samples of a WAV liblinphone recorded, and their rate.

    The recorder writes through a buffer and fills in the RIFF sizes when it closes: read the
    file after the call has ended.
    """
    raw = path.read_bytes()
    if len(raw) < 44 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file ({len(raw)} bytes)")
    channels, rate = struct.unpack_from("<HI", raw, 22)
    data = raw.find(b"data", 12)
    body = raw[data + 8 :] if data >= 0 else raw[44:]
    count = len(body) // 2
    samples = list(struct.unpack(f"<{count}h", body[: count * 2]))
    return samples[::channels], int(rate)


def _goertzel(samples: list[int], frequency: float, rate: int) -> float:
    """Signal power at one frequency (Goertzel's algorithm)."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coefficient * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coefficient * s1 * s2


def dominant_frequency(samples: list[int], rate: int, low: float, high: float) -> float:
    """The strongest frequency in [low, high]: a 10 Hz scan, then 1 Hz around the best."""
    coarse = max(range(int(low), int(high) + 1, 10), key=lambda f: _goertzel(samples, f, rate))
    fine = range(max(int(low), coarse - 10), min(int(high), coarse + 10) + 1)
    return float(max(fine, key=lambda f: _goertzel(samples, f, rate)))


def level_dbfs(samples: list[int]) -> float:
    """RMS level relative to full scale (-inf for silence)."""
    if not samples:
        return -math.inf
    rms = math.sqrt(sum(x * x for x in samples) / len(samples))
    return 20 * math.log10(rms / 32768) if rms else -math.inf


@dataclass(frozen=True)
class Heard:
    """What a recording holds: its loudest stretch's frequency and level, and how much sound."""

    frequency: float
    level_dbfs: float
    sound_seconds: float


def heard(path: Path, low: float, high: float, window: float = 0.25) -> Heard:
    """Analyse a closed recording: the dominant frequency in [low, high] of its loudest
    ``window``, and the total time louder than -50 dBFS."""
    samples, rate = read_samples(path)
    size = max(1, int(rate * window))
    windows = [samples[i : i + size] for i in range(0, len(samples) - size + 1, size)]
    if not windows:
        return Heard(0.0, -math.inf, 0.0)
    levels = [level_dbfs(w) for w in windows]
    loudest = max(range(len(windows)), key=lambda i: levels[i])
    return Heard(
        frequency=dominant_frequency(windows[loudest], rate, low, high),
        level_dbfs=levels[loudest],
        sound_seconds=sum(window for level in levels if level > -50),
    )

"""On-disk cache of built backend artifacts (ONNX files, OpenVINO IR, TensorRT engines).

An artifact is valid only for what it was built from, so each one lives in a folder named by the
hash of its key: weights hash, model config hash, backend and its version, device (GPU model and
compute capability, or the CPU's model and ISA flags), input size, clip length, precision and the
graph part. A key seen for the first time is built; the log line then names the parts of the key
that differ from the most recent artifact of the same backend and part ("weights", "device",
...). A folder whose files do not match the checksums in its manifest, or that fails to load, is
deleted and rebuilt: a damaged cache never stops the tracker. Artifacts are plain files (ONNX
protobuf, OpenVINO XML + weights, serialized TensorRT engines): loading runs no pickled code.

Layout: ``<root>/<backend>/<part>-<digest>/`` with the artifact files and ``manifest.json``
(``{"key": {...}, "files": {name: sha256}}``), written last, atomically.

Trust (issue 35; a TensorRT engine is code for the GPU, and the key is computable by anyone):
the cache is used only as ssh uses its keys. The root must be a folder owned by this user and
not writable by group or others, and so must every folder above it (unless sticky, as /tmp)
and, inside, the backend folder, each entry and each of its files (no symbolic links). An
untrusted root is not used: a warning gives the reason and a private folder is used instead
(the default cache dir if it is trusted, else a fresh 0700 temporary folder). An entry's
manifest must list a non-empty set of plain file names (no absolute paths, no ``..``, no
separators) that is exactly the set of files in the entry, and every file's SHA-256 is checked
against it immediately before the artifact is loaded; an entry failing any check is deleted and
rebuilt, the reason logged. Folders are created with mode 0700.

Size: the entries under the root are kept below ``max_bytes`` (:data:`DEFAULT_MAX_BYTES`) by
deleting the least recently used ones (an entry's folder mtime is touched whenever it is
loaded) after each build; entries this process uses are never pruned.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from stemseg_core.checkpoint import file_sha256
from stemseg_core.data.safe_names import check_plain_name

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: Bumped when the exported graphs change in a way the other key parts do not show.
GRAPH_VERSION = 1

T = TypeVar("T")

#: Size cap of a cache's entries (bytes) unless the caller gives another (None = no cap).
DEFAULT_MAX_BYTES = 8 << 30
#: Build folders (``*.tmp-*``) older than this are left from a crash and removed when pruning.
STALE_BUILD_S = 24 * 3600
_SHA256_HEX = frozenset("0123456789abcdef")


class UntrustedCacheError(OSError):
    """A cache folder or file that may have been written by someone else; the message says
    why."""


def _untrusted(path: Path, st: os.stat_result, *, want_dir: bool, uid: int) -> str | None:
    """Why ``path`` (its lstat ``st``) cannot be trusted, or None: a regular file or folder
    (as ``want_dir``), no link, owned by ``uid`` and not writable by group or others."""
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link"
    if want_dir and not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a folder"
    if not want_dir and not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if st.st_uid != uid:
        return f"{path} is owned by uid {st.st_uid}, not by this user (uid {uid})"
    if st.st_mode & 0o022:
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002))
                           if st.st_mode & bit)
        return f"{path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def check_private_dir(path: Path, uid: int | None = None) -> str | None:
    """None when ``path`` is a folder only this user (or root) can change, as ssh requires of
    ~/.ssh: the folder itself owned by this user and not group/other-writable; every folder
    above it owned by this user or root and not group/other-writable unless sticky (/tmp).
    Otherwise the reason, in words."""
    uid = os.geteuid() if uid is None else uid
    try:
        real = path.resolve(strict=True)
        problem = _untrusted(real, os.lstat(real), want_dir=True, uid=uid)
        if problem:
            return problem
        for parent in real.parents:
            st = os.stat(parent)
            if st.st_uid not in (uid, 0):
                return f"{parent} (above it) is owned by uid {st.st_uid}, not by this user or root"
            if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
                return (f"{parent} (above it) is writable by others and not sticky (mode "
                        f"{stat.S_IMODE(st.st_mode):04o})")
    except OSError as e:
        return f"{path} cannot be checked ({e.strerror or e})"
    return None


def _private_mkdir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700 for the folders made here."""
    missing = []
    p = path
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/stemseg/engines, or ~/.cache/stemseg/engines."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stemseg" / "engines"


class ArtifactCache:
    """Folders of built artifacts under ``root``, one per key (see module doc).

    ``root``: the cache folder (None or "" = :func:`default_cache_dir`); used only when it is
    private to this user, else a private folder is used and :attr:`requested_root` keeps what
    was asked for (:attr:`untrusted_reason` says why). ``max_bytes``: size cap of the entries
    (None = no cap), least recently used entries pruned after each build.
    """

    def __init__(self, root: str | Path | None = None, *,
                 max_bytes: int | None = DEFAULT_MAX_BYTES):
        self.requested_root = Path(root) if root else default_cache_dir()
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self._uid = os.geteuid()
        #: why the requested root was not used (None = it is used)
        self.untrusted_reason: str | None = None
        self.root = self._trusted_root(self.requested_root)
        #: folders of the artifacts loaded or built through this object, in order
        self.used: list[Path] = []
        #: how many of them were built (the others were loaded from the cache)
        self.built = 0

    # -- where -------------------------------------------------------------------------------
    def _trusted_root(self, root: Path) -> Path:
        problem = self._prepare_root(root)
        if problem is None:
            return root
        self.untrusted_reason = problem
        default = default_cache_dir()
        if root != default and self._prepare_root(default) is None:
            private = default
        else:
            private = Path(tempfile.mkdtemp(prefix="stemseg-engines-"))  # mode 0700
        log.warning("engine cache %s is not used: %s (a cached engine there could have been "
                    "planted by another user); using %s instead. Make the folder yours and "
                    "not writable by others (chmod 700) to use it", root, problem, private)
        return private

    @staticmethod
    def _prepare_root(root: Path) -> str | None:
        try:
            _private_mkdir(root)
        except OSError as e:
            return f"{root} cannot be created ({e.strerror or e})"
        return check_private_dir(root)

    def _use_private_root(self, reason: str) -> None:
        """Something inside the root cannot be trusted or removed: go on in a fresh private
        folder (the entries built there are lost at exit unless it is the default dir)."""
        private = Path(tempfile.mkdtemp(prefix="stemseg-engines-"))
        log.warning("engine cache %s: %s; using %s instead", self.root, reason, private)
        self.untrusted_reason = reason
        self.root = private

    def folder(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        return self.root / str(key["backend"]) / f"{key['part']}-{digest}"

    # -- get or build ------------------------------------------------------------------------
    def get_or_build(self, key: dict[str, Any], build: Callable[[Path], None],
                     load: Callable[[Path], T]) -> tuple[T, bool]:
        """Load the artifact of ``key``, building it first if absent, damaged or untrusted.

        ``build(folder)`` writes the artifact files into an empty folder; ``load(folder)``
        returns the loaded artifact (and raises if it cannot). Returns (artifact, built_now).
        Every file is checked against the manifest's SHA-256 right before ``load``.
        """
        folder = self.folder(key)
        if os.path.lexists(folder):
            loaded, problem = self._load_checked(folder, key, load)
            if problem is None:
                return loaded, False
            log.warning("cached %s %s artifact %s is unusable: %s; rebuilding", key["backend"],
                        key["part"], folder, problem)
            if not self._remove(folder):
                self._use_private_root(f"cannot delete the unusable entry {folder}")
                folder = self.folder(key)
        else:
            log.info("%s %s: %s; building %s", key["backend"], key["part"],
                     self._what_changed(key), folder)
        try:
            self._build_into(folder, key, build)
        except UntrustedCacheError as e:
            self._use_private_root(str(e))
            folder = self.folder(key)
            self._build_into(folder, key, build)
        self.built += 1
        loaded = load(folder)
        self.used.append(folder)
        self.prune()
        return loaded, True

    def get(self, key: dict[str, Any], load: Callable[[Path], T]) -> T | None:
        """The artifact of ``key`` loaded, or None where it is absent; an entry that fails a
        check or does not load is deleted (the reason logged) and None returned. For a process
        that cannot build it (no torch model)."""
        folder = self.folder(key)
        if not os.path.lexists(folder):
            return None
        loaded, problem = self._load_checked(folder, key, load)
        if problem is None:
            return loaded
        log.warning("cached %s %s artifact %s is unusable: %s; deleting it", key["backend"],
                    key["part"], folder, problem)
        self._remove(folder)
        return None

    def _load_checked(self, folder: Path, key: dict[str, Any],
                      load: Callable[[Path], T]) -> tuple[T | None, str | None]:
        """(the loaded artifact, None) after the entry's checks, marked used; or (None, why it
        is unusable): a failed check or any loader error (a damaged artifact)."""
        problem = self._check(folder, key)
        if problem is not None:
            return None, problem
        try:
            loaded = load(folder)
        except Exception as e:  # any loader error means a damaged artifact
            return None, f"it does not load ({type(e).__name__}: {e})"
        self._touch(folder)
        self.used.append(folder)
        return loaded, None

    def put(self, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
        """Build the entry of ``key`` (replacing one there); returns its folder."""
        folder = self.folder(key)
        try:
            self._build_into(folder, key, build)
        except UntrustedCacheError as e:
            self._use_private_root(str(e))
            folder = self.folder(key)
            self._build_into(folder, key, build)
        return folder

    def _backend_dir(self, backend_dir: Path) -> None:
        """Create (0700) or check the root's per-backend folder; UntrustedCacheError if it is
        someone else's or writable by others and cannot be replaced."""
        _private_mkdir(backend_dir)
        problem = _untrusted(backend_dir, os.lstat(backend_dir), want_dir=True, uid=self._uid)
        if problem is None:
            return
        log.warning("engine cache: %s; deleting it and its entries", problem)
        if not self._remove(backend_dir):
            raise UntrustedCacheError(f"{problem}, and it cannot be deleted")
        _private_mkdir(backend_dir)

    def _build_into(self, folder: Path, key: dict[str, Any],
                    build: Callable[[Path], None]) -> None:
        self._backend_dir(folder.parent)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))  # 0700
        try:
            build(tmp)
            files = {}
            for p in sorted(tmp.iterdir()):
                st = os.lstat(p)
                if not stat.S_ISREG(st.st_mode):
                    raise RuntimeError(f"building {key['backend']} {key['part']} left "
                                       f"{p.name}, which is not a plain file; the cache holds "
                                       f"plain files only")
                if st.st_mode & 0o022:  # as the checks on loading want them
                    os.chmod(p, stat.S_IMODE(st.st_mode) & ~0o022)
                files[check_plain_name(p.name, "artifact file name")] = file_sha256(p)
            if not files:
                raise RuntimeError(f"building {key['backend']} {key['part']} wrote no files")
            manifest = {"key": key, "files": files}
            (tmp / (MANIFEST + ".part")).write_text(json.dumps(manifest, indent=2))
            os.replace(tmp / (MANIFEST + ".part"), tmp / MANIFEST)
            if os.path.lexists(folder):  # built meanwhile by another process: keep ours
                self._remove(folder)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _check(self, folder: Path, key: dict[str, Any]) -> str | None:
        """None if ``folder`` holds a complete, trusted artifact for ``key``, else what is
        wrong. Hashes every file: call it right before loading."""
        uid = self._uid
        try:
            for d in (folder.parent, folder):
                problem = _untrusted(d, os.lstat(d), want_dir=True, uid=uid)
                if problem:
                    return problem
            problem = _untrusted(folder / MANIFEST, os.lstat(folder / MANIFEST),
                                 want_dir=False, uid=uid)
            if problem:
                return problem
            manifest = json.loads((folder / MANIFEST).read_text())
            files = manifest["files"]
            present = {p.name for p in folder.iterdir()} - {MANIFEST}
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"no readable manifest ({type(e).__name__})"
        if not isinstance(manifest, dict) or manifest.get("key") != key:
            return "its manifest holds another key"
        if not isinstance(files, dict) or not files:
            return "its manifest lists no files"
        for name, digest in files.items():
            try:
                check_plain_name(name, "file name in the manifest")
            except ValueError as e:
                return str(e).split(";")[0]
            if name == MANIFEST or not (isinstance(digest, str) and len(digest) == 64
                                        and set(digest) <= _SHA256_HEX):
                return f"its manifest entry {name!r} is not a file name with a SHA-256"
        if set(files) != present:
            extra, missing = sorted(present - set(files)), sorted(set(files) - present)
            return ("its files are not the manifest's"
                    + (f" (not listed: {', '.join(extra)})" if extra else "")
                    + (f" ({', '.join(missing)} missing)" if missing else ""))
        for name, digest in files.items():
            p = folder / name
            try:
                problem = _untrusted(p, os.lstat(p), want_dir=False, uid=uid)
                if problem:
                    return problem
                if file_sha256(p) != digest:
                    return f"{name} does not match its checksum (damaged, truncated or replaced)"
            except OSError as e:
                return f"{name} cannot be read ({e.strerror or e})"
        return None

    def _remove(self, path: Path) -> bool:
        """Delete an entry (or a link in its place); True when it is gone."""
        try:
            if os.path.islink(path) or not os.path.isdir(path):
                os.unlink(path)
            else:
                shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("engine cache: cannot delete %s (%s)", path, e.strerror or e)
        return not os.path.lexists(path)

    @staticmethod
    def _touch(folder: Path) -> None:
        """Mark an entry as used now (its folder mtime orders the pruning)."""
        try:
            os.utime(folder)
        except OSError:
            pass

    # -- size --------------------------------------------------------------------------------
    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, folder) of every entry under the root, least recently used
        first."""
        out = []
        try:
            backends = [b for b in self.root.iterdir() if b.is_dir() and not b.is_symlink()]
        except OSError:
            return []
        for b in backends:
            try:
                folders = list(b.iterdir())
            except OSError:
                continue
            for f in folders:
                try:
                    st = os.lstat(f)
                    if not stat.S_ISDIR(st.st_mode):
                        continue
                    size = sum(os.lstat(x).st_size for x in f.iterdir())
                except OSError:
                    continue
                out.append((st.st_mtime, size, f))
        return sorted(out, key=lambda e: e[0])

    def prune(self, max_bytes: int | None = None) -> list[Path]:
        """Delete the least recently used entries until the rest fit in ``max_bytes``
        (default: the cache's); entries used by this object and builds in progress are kept,
        builds left by a crash over a day ago deleted. Returns the folders deleted."""
        cap = self.max_bytes if max_bytes is None else int(max_bytes)
        entries = self.entries()
        keep = set(self.used)
        removed = []
        now = time.time()
        for mtime, _, f in entries:
            if ".tmp-" in f.name and now - mtime > STALE_BUILD_S and self._remove(f):
                removed.append(f)
        if cap is None:
            return removed
        live = [e for e in entries if ".tmp-" not in e[2].name]
        total = sum(size for _, size, _ in live)
        for _, size, f in live:
            if total <= cap:
                break
            if f in keep:
                continue
            if self._remove(f):
                removed.append(f)
                total -= size
                log.info("engine cache over %.1f GB: deleted the least recently used %s "
                         "(%.0f MB)", cap / 1e9, f, size / 1e6)
        return removed

    def _what_changed(self, key: dict[str, Any]) -> str:
        """Which key parts differ from the newest artifact of the same backend and part."""
        base = self.root / str(key["backend"])
        newest: tuple[float, dict[str, Any]] | None = None
        for m in base.glob(f"{key['part']}-*/{MANIFEST}"):
            try:
                other = json.loads(m.read_text())["key"]
                mtime = m.stat().st_mtime
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if newest is None or mtime > newest[0]:
                newest = (mtime, other)
        if newest is None:
            return "no cached artifact yet"
        other = newest[1]
        if not isinstance(other, dict):
            return "key changed since the last build"
        changed = [f"{k} ({other.get(k)!r} -> {key.get(k)!r})" for k in sorted(key)
                   if other.get(k) != key.get(k)]
        return "key changed since the last build: " + "; ".join(changed)

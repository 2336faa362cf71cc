"""Where a command-line run writes, so that no run loses or mixes another's results.

* A run writes into `<output>.incomplete/` and takes `<output>`'s place only once everything is
  written, so `<output>` holds the earlier run or the new one, never a mixture; an interrupted run
  resumes from that directory when the same command is run again.
* A run holds `<output>.lock` (its pid, host and start) while it works: a second run into the same
  `--output` stops with an error naming the first, and a lock left by a process that no longer
  exists on this host is taken over with a message.
* `--overwrite` replaces only a finished run of this tool (it leaves `.keras-introspect-run` in
  it) and never a directory that holds the dataset or lies inside it.
"""

import datetime
import json
import os
import shutil
import socket

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from keras_introspect.errors import InputError
from keras_introspect.paths import inside, write_json

MARKER = ".keras-introspect-run"
# What runs of earlier versions (before the marker) leave in --output.
LEGACY_ARTEFACTS = {"history.csv", "history.json", "metrics.json", "curves.png", "reliability.png",
                    "explanations.png", "model.keras", "serving"}


class CliError(InputError):
    """A user error found by the command line itself: printed as one line, exit code 2."""


class RunLock:
    """An exclusive lock on a file naming its holder (pid, host, start, command).

    The exclusion is the kernel's (`fcntl.flock`): a process that dies releases it, so a lock file
    left behind is taken over (with a message), and two runs can never both hold it. The file's
    content only says who holds it. A file naming another host is respected, since its holder's
    state cannot be seen from here.

    Args:
        path: the lock file.
        command: what the holder runs, for the message a second run prints.
    """

    def __init__(self, path, command=""):
        self.path = path
        self.command = command
        self.descriptor = None

    @property
    def held(self):
        return self.descriptor is not None

    def acquire(self):
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": datetime.datetime.now().isoformat(timespec="seconds"), "command": self.command}
        if fcntl is None:  # no flock on this platform (Windows): runs are not locked
            return self
        for _ in range(3):
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                holder = self.holder()
                raise CliError(f"another run is writing to this --output: {describe(holder, 'a run starting now')} "
                               f"holds {self.path}; wait for it to finish or choose another --output") from None
            try:  # the file may have been released and removed between our open and our lock
                current = os.path.samestat(os.fstat(descriptor), os.stat(self.path))
            except FileNotFoundError:
                current = False
            if not current:
                os.close(descriptor)
                continue
            earlier = self.holder()
            if earlier.get("host") not in (None, owner["host"]):
                os.close(descriptor)
                raise CliError(f"{describe(earlier)} holds {self.path} from another host; if no run is writing "
                               f"there, delete {self.path}")
            if os.fstat(descriptor).st_size:
                print(f"Taking over the lock {self.path} left by {describe(earlier)}, which no longer runs.",
                      flush=True)
            os.ftruncate(descriptor, 0)
            os.write(descriptor, json.dumps(owner).encode())
            self.descriptor = descriptor
            return self
        raise CliError(f"could not take the lock {self.path}; other runs keep taking it")

    def holder(self):
        try:
            with open(self.path) as f:
                holder = json.load(f)
        except (OSError, ValueError):
            return {}  # being written this instant, or unreadable
        return holder if isinstance(holder, dict) else {}

    def release(self):
        if self.descriptor is not None:
            os.remove(self.path)  # while still holding it, so no run sees a free lock on a file about to go
            os.close(self.descriptor)
            self.descriptor = None


def describe(holder, unknown="a run (its lock file is unreadable)"):
    if not holder:
        return unknown
    return (f"process {holder.get('pid')} on {holder.get('host')} (started {holder.get('started')}"
            f"{': ' + holder['command'] if holder.get('command') else ''})")


class RunDirectory:
    """A run's work directory, renamed onto `output` once everything is written (see the module).

    Args:
        output: the `--output` directory.
        overwrite: replace an earlier run of this tool in `output`.
        settings: the run's settings; an interrupted run resumes only with the same ones.
        dataset: the dataset's path (or name), never to be overwritten or written into.
        lock: take `<output>.lock` (the chief of a multi-worker run; the other workers write elsewhere).
        command: the command line, named in the lock.
    """

    def __init__(self, output, overwrite, settings, dataset=None, lock=True, command=""):
        # `~` expanded as for the dataset; a symbolic link is followed to the folder it names
        self.output = os.path.realpath(os.path.expanduser(str(output)))
        self.work = self.output + ".incomplete"
        parent = os.path.dirname(self.output)
        if inside(os.getcwd(), self.output):
            raise CliError(f"--output {output!r} is the current directory or holds it; a run replaces its --output "
                           "at the end: give a sub-folder, e.g. --output runs/latest")
        enclosing = next((p for p in parents(self.output) if os.path.exists(os.path.join(p, MARKER))), None)
        if enclosing:
            raise CliError(f"--output {output!r} lies inside the earlier run {enclosing!r}, which --overwrite would "
                           "replace with everything in it; choose a folder outside it")
        if os.path.exists(parent) and not os.path.isdir(parent) or any(
                os.path.isfile(p) for p in parents(self.output)):
            raise CliError(f"--output {output!r} lies under a file; give a directory path")
        if os.path.isfile(self.output):
            raise CliError(f"--output {output!r} is a file; give a directory")
        if dataset is not None and os.path.exists(str(dataset)):
            if any(inside(dataset, mine) or inside(mine, dataset) for mine in (self.output, self.work)):
                raise CliError(f"--output {output!r} and the dataset {str(dataset)!r} overlap; a run must not write "
                               "into its data or replace it: choose an --output outside the dataset")
        self.lock = RunLock(self.output + ".lock", command) if lock else None
        if self.lock:
            os.makedirs(parent, exist_ok=True)
            self.lock.acquire()
        try:
            self._check_output(output, overwrite)
            self.resuming = self._open_work(settings)
        except BaseException:
            self.release()
            raise

    def _check_output(self, output, overwrite=True):
        if not os.path.isdir(self.output) or not os.listdir(self.output):
            return
        entries = sorted(os.listdir(self.output))
        listed = f"{', '.join(entries[:4])}{', ...' if len(entries) > 4 else ''}"
        foreign = sorted(set(entries) - LEGACY_ARTEFACTS - {MARKER}) + foreign_exports(self.output)
        earlier_run = MARKER in entries or not foreign  # or a run of a version before the marker
        if overwrite and earlier_run and foreign:
            raise CliError(f"--output {output!r} is an earlier run with files it did not write ({', '.join(foreign[:4])}"
                           f"{', ...' if len(foreign) > 4 else ''}); --overwrite would delete them: move them out or "
                           "choose another --output")
        if not overwrite:
            raise CliError(f"--output {output!r} already holds {'a run' if earlier_run else 'files'} ({listed}); "
                           + ("pass --overwrite to replace it once the new run has finished, or " if earlier_run
                              else "") + "choose another --output")
        if not earlier_run:
            raise CliError(f"--output {output!r} holds {listed}, which is not a run of keras-introspect (no {MARKER}); "
                           "--overwrite replaces only earlier runs: choose another --output")

    def _open_work(self, settings):
        marker = os.path.join(self.work, "settings.json")
        self.created = False
        if os.path.isdir(self.work) and os.listdir(self.work) and not os.path.exists(marker):
            raise CliError(f"{self.work} exists and is not the work folder of a run of keras-introspect (no "
                           "settings.json); a run writes there: move it, or choose another --output")
        if os.path.exists(marker):
            with open(marker) as f:
                earlier = json.load(f)
            # A setting one side lacks counts as unset: an option added since keeps resuming at its default.
            changed = sorted(k for k in set(earlier) | set(settings) if earlier.get(k) != settings.get(k))
            if changed:
                raise CliError(f"{self.work} holds an interrupted run with other settings ({', '.join(changed)}); "
                               "run the same command again to resume it, or delete that directory")
            return True
        self.created = not os.path.isdir(self.work)
        os.makedirs(self.work, exist_ok=True)
        write_json(marker, settings, indent=2)
        return False

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def started(self):
        """Whether training saved any state a rerun could resume from."""
        return any(os.path.exists(self.path(name)) and os.listdir(self.path(name))
                   for name in ("backup", "checkpoints") if os.path.isdir(self.path(name)))

    def abandon(self):
        """After an error before any state was saved: remove the work directory, so the corrected
        command starts afresh instead of being refused as another run's resumption."""
        if self.created and not self.started() and os.path.isdir(self.work):
            shutil.rmtree(self.work)

    def commit(self):
        """Drop the resume state and move the finished run onto `output`."""
        self._check_output(self.output)  # again: files may have been added to it while this run trained
        for name in ("backup", "checkpoints", "settings.json"):
            target = self.path(name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
        with open(self.path(MARKER), "w") as f:
            f.write("A finished run of keras-introspect: `--overwrite` may replace this directory.\n")
        replaced = None
        if os.path.isdir(self.output):
            replaced = f"{self.output}.replaced-{os.getpid()}"
            os.rename(self.output, replaced)
        os.rename(self.work, self.output)
        if replaced:
            shutil.rmtree(replaced)

    def release(self):
        if self.lock:
            self.lock.release()


def foreign_exports(run):
    """What a run's `serving/` holds besides the run's own export (one model name, version 1 only)."""
    serving = os.path.join(run, "serving")
    if not os.path.isdir(serving):
        return []
    names = sorted(os.listdir(serving))
    versions = sorted(os.listdir(os.path.join(serving, names[0]))) if len(names) == 1 and \
        os.path.isdir(os.path.join(serving, names[0])) else None
    if versions == ["1"]:
        return []
    return [f"serving/{name}" + (f"/{v}" if versions else "") for name in names for v in (versions or [""])
            if not (versions and v == "1")]


def parents(path):
    """The existing ancestors of `path`, nearest first."""
    found = []
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return found
        path = parent
        if os.path.exists(path):
            found.append(path)

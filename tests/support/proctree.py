"""Process trees read from Linux /proc: the tests that kill servers and the benchmarks that add up
their CPU and memory both need every process below a server (its ingest workers and fork server)."""

from pathlib import Path


def descendants(pid: int) -> set[int]:
    """Every process below pid, from the parent pid of each process in /proc.

    (Not /proc/<pid>/task/*/children: a child is listed under the thread that started it, and
    the server's request threads come and go, so a walk through them can miss the fork server.)
    """
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found.update(kids)
        todo.extend(kids)
    return found


def alive(pid: int) -> bool:
    """Whether pid is a process that has not exited (a zombie counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"

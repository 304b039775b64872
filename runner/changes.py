"""Which files a local run counts as changed, for `paths` stages (`dockercise run --since REV`).

The only module of the runner that reads git (GitPython).
"""

from __future__ import annotations

from pathlib import Path

import git

from runner.errors import UsageError

__all__ = ["changed_since"]


def changed_since(project: Path, rev: str) -> list[str]:
    """Files that differ between REV and the working tree, plus untracked ones.

    Paths are relative to the project, which may be a folder inside the repository.
    """
    try:
        repo = git.Repo(project, search_parent_directories=True)
        commit = repo.commit(rev)
    except git.InvalidGitRepositoryError:
        raise UsageError(f"--since {rev}: {project} is not in a git repository") from None
    except (git.BadName, ValueError):
        raise UsageError(f"--since {rev}: no such revision") from None
    top = Path(repo.working_tree_dir or project).resolve()
    found: set[str] = set()
    for diff in commit.diff(None):
        found.update(p for p in (diff.a_path, diff.b_path) if p)
    found.update(repo.untracked_files)
    try:
        inside = project.resolve().relative_to(top)
    except ValueError:
        return sorted(found)
    prefix = "" if str(inside) == "." else f"{inside.as_posix()}/"
    return sorted(p[len(prefix) :] for p in found if p.startswith(prefix))

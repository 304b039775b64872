"""The bot's settings, parsed once from an environment mapping into a typed object.

Nothing reads the environment anywhere else in the bot, so tests pass their
own mapping, and a missing or malformed setting stops the server at start
with a message naming it, rather than failing on the first webhook.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from bot.checks import ReportMode
from bot.destinations import Allowance, AllowanceInvalid, parse_allowance
from runner.cachestore import CACHE_DAYS, CACHE_MAX, CACHE_URL
from runner.cachestore import DEFAULT_MAX as DEFAULT_CACHE_MAX
from runner.caching import DEFAULT_DAYS as DEFAULT_CACHE_DAYS
from runner.encryption import is_repository
from runner.errors import DockerciseError
from runner.limits import Limits, limits_from_env, parse_size

__all__ = ["ForkApproval", "Settings", "SettingsInvalid", "load_settings"]

DEFAULT_API = "https://api.github.com"
DEFAULT_WEB = "https://github.com"


class ForkApproval(StrEnum):
    """`DOCKERCISE_FORK_APPROVAL`: which fork pull requests wait for a writer's Approve (§11)."""

    OUTSIDE = "outside"
    """Those whose author is not a collaborator of the repository (the default)."""
    ALWAYS = "always"
    NEVER = "never"


class SettingsInvalid(DockerciseError):
    """A required setting is missing or malformed; names every one of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Settings:
    app_id: int
    private_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    events_secret: str = field(repr=False)
    results: str
    public_url: str
    data_dir: Path
    api_url: str = DEFAULT_API
    redis_url: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    allowed_host_paths: tuple[str, ...] = ()
    trusted_repos: frozenset[str] = frozenset()
    """`owner/repo` (lower case) whose builds (never a fork's) mount host paths as local runs do."""
    metadata_probe: tuple[str, int] | None = None
    """(host, port) a worker checks at start-up that builds cannot reach; None: no check."""
    probe_image: str = "busybox"
    """The image of that check's container (it runs `timeout` and `nc`)."""
    workers: int = 2
    stale_after: float = 30.0
    """Seconds without a heartbeat after which a running build's worker is taken for dead."""
    keep_days: int = 30
    """Days the state remembers a finished build (and so deduplicates its delivery)."""
    limits: Limits = field(default_factory=Limits.defaults)
    """The operator's limits on every bot build (SPEC §10), defaults filled in."""
    cache_max: int = DEFAULT_CACHE_MAX
    """Bytes of `cache` archives kept on this worker (`DOCKERCISE_CACHE_MAX`), LRU past it."""
    cache_url: str | None = None
    """`DOCKERCISE_CACHE_URL`: the S3 place every worker shares caches through."""
    cache_days: int = DEFAULT_CACHE_DAYS
    """`DOCKERCISE_CACHE_DAYS`: caches and kept images unused that long are removed."""
    client_id: str | None = None
    """The GitHub App's OAuth client id: sign-in is offered only when it is set (§11)."""
    client_secret: str | None = field(default=None, repr=False)
    web_url: str = DEFAULT_WEB
    fork_approval: ForkApproval = ForkApproval.OUTSIDE
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """The environment these settings were read from, for the libraries' own settings
    (a remote results store's spool); passed on rather than read again from the process."""
    mirror_max: int = 20 * 1024**3
    """Bytes of disk the repository mirrors may take in all before the least used go."""
    legacy_secrets: frozenset[str] = frozenset()
    """Repositories (lower case) whose builds accept `secure:` values bound to no repository."""
    downstream_allow: Allowance = field(default_factory=Allowance)
    """What `meta.downstream` may reach beyond public https:// hosts (SPEC §10)."""
    downstream_secret: str | None = field(default=None, repr=False)
    """Signs events to `meta.downstream` URLs: DOCKERCISE_EVENTS_SECRET when set (never the
    webhook secret); None sends them nowhere, since a downstream receiver that verifies
    events must hold their secret, and the webhook secret would let it forge GitHub's."""

    def accepts_unbound_secrets(self, repo: str) -> bool:
        """Whether `repo`'s builds may open `secure:` values made without `--repo`."""
        return repo.lower() in self.legacy_secrets

    report: ReportMode = ReportMode.CHECKS
    """`DOCKERCISE_REPORT`: check runs where the installation grants them, or statuses only."""

    @property
    def tokens(self) -> list[str]:
        """The bot's own secrets, masked in everything a build prints or stores: the private
        key too, each of its lines but the PEM's `-----BEGIN/END ...-----` armour (the masker
        takes a value's lines one by one, and the armour is the same in every key)."""
        key_lines = [
            line for line in self.private_key.splitlines() if line and not line.startswith("-----")
        ]
        values = (
            self.webhook_secret,
            self.events_secret,
            self.secret_key,
            self.client_secret,
            *key_lines,
        )
        return [v for v in values if v]

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over https when the bot is reached over https."""
        return self.public_url.startswith("https://")


def _int(env: Mapping[str, str], name: str, problems: list[str], default: int | None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            problems.append(f"{name} is not set")
            return 0
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name} must be a whole number, not '{raw}'")
        return 0
    if value < 1:
        problems.append(f"{name} must be at least 1")
    return value


def _size(env: Mapping[str, str], name: str, problems: list[str], default: int) -> int:
    """`20g`, `512m`, `1048576`: bytes, the units powers of 1024 (as Docker's `--memory`),
    read as the limits are (`runner.limits.parse_size`)."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return parse_size(raw)
    except ValueError:
        problems.append(f"{name} must be a size like 20g, 512m or 1048576, not '{raw}'")
        return 0


def _private_key(env: Mapping[str, str], problems: list[str]) -> str:
    key = env.get("GITHUB_PRIVATE_KEY", "")
    path = env.get("GITHUB_PRIVATE_KEY_PATH", "")
    if not key and path:
        try:
            key = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            problems.append(f"GITHUB_PRIVATE_KEY_PATH: cannot read {path} ({e.strerror})")
            return ""
    if not key:
        problems.append("GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) is not set")
    elif "PRIVATE KEY" not in key:
        problems.append("GITHUB_PRIVATE_KEY is not a PEM private key (the app's .pem file)")
    return key.replace("\\n", "\n")


def _repositories(env: Mapping[str, str], name: str, problems: list[str]) -> frozenset[str]:
    """A comma-separated list of owner/repo (lower case, as GitHub ignores case)."""
    found = [r.strip() for r in env.get(name, "").split(",") if r.strip()]
    bad = [r for r in found if not is_repository(r)]
    if bad:
        problems.append(f"{name} must list owner/repo names, not {', '.join(map(repr, bad))}")
    return frozenset(r.lower() for r in found)


_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$|^\[[0-9A-Fa-f:.]+\]$")
"""A host name or address; never an option (`-e`) of the probe's `nc`."""

DEFAULT_METADATA_PROBE = "169.254.169.254:80"
"""The cloud metadata address (AWS, GCP, Azure, OpenStack...) that builds must not reach."""


def _probe(env: Mapping[str, str], problems: list[str]) -> tuple[str, int] | None:
    raw = env.get("DOCKERCISE_METADATA_PROBE", DEFAULT_METADATA_PROBE).strip()
    if not raw:
        return None
    host, _, port = raw.rpartition(":")
    if not _HOST.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
        problems.append(
            f"DOCKERCISE_METADATA_PROBE must be HOST:PORT (e.g. {DEFAULT_METADATA_PROBE}),"
            f" or empty to check nothing, not {raw!r}"
        )
        return None
    return host.strip("[]"), int(port)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `env` (default: os.environ); SettingsInvalid names every bad one."""
    env = os.environ if env is None else env
    problems: list[str] = []
    app_id = _int(env, "GITHUB_APP_ID", problems, None)
    private_key = _private_key(env, problems)
    webhook_secret = env.get("GITHUB_WEBHOOK_SECRET", "")
    if not webhook_secret:
        problems.append("GITHUB_WEBHOOK_SECRET is not set")
    public_url = env.get("DOCKERCISE_PUBLIC_URL", "").rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        problems.append("DOCKERCISE_PUBLIC_URL must be the bot's URL, like https://ci.example.com")
    data_dir = Path(env.get("DOCKERCISE_DATA_DIR") or Path.home() / ".local/share/dockercise")
    results = env.get("DOCKERCISE_RESULTS") or str(data_dir / "results")
    redis_url = env.get("DOCKERCISE_REDIS_URL") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        problems.append(f"DOCKERCISE_REDIS_URL must be redis://HOST:PORT/DB, not '{redis_url}'")
    allowed = tuple(
        p for p in env.get("DOCKERCISE_ALLOWED_HOST_PATHS", "").split(":") if p.startswith("/")
    )
    trusted = _repositories(env, "DOCKERCISE_TRUSTED_REPOS", problems)
    probe = _probe(env, problems)
    workers = _int(env, "DOCKERCISE_WORKERS", problems, 2)
    stale_after = _int(env, "DOCKERCISE_STALE_AFTER", problems, 30)
    keep_days = _int(env, "DOCKERCISE_KEEP_DAYS", problems, 30)
    mirror_max = _size(env, "DOCKERCISE_MIRROR_MAX", problems, 20 * 1024**3)
    legacy = _repositories(env, "DOCKERCISE_LEGACY_SECRETS", problems)
    try:
        allow = parse_allowance(env.get("DOCKERCISE_DOWNSTREAM_ALLOW", ""))
    except AllowanceInvalid as e:
        problems.append(str(e))
        allow = Allowance()
    events_secret = env.get("DOCKERCISE_EVENTS_SECRET") or None
    if events_secret is not None and events_secret == webhook_secret:
        problems.append(
            "DOCKERCISE_EVENTS_SECRET must differ from GITHUB_WEBHOOK_SECRET: whoever receives"
            " the events could forge GitHub's deliveries with it (unset it to send no"
            " meta.downstream events)"
        )
    limits, wrong = limits_from_env(env, defaults=True)
    problems += wrong
    cache_max = _size(env, CACHE_MAX, problems, DEFAULT_CACHE_MAX)
    cache_days = _int(env, CACHE_DAYS, problems, DEFAULT_CACHE_DAYS)
    cache_url = env.get(CACHE_URL) or None
    if cache_url is not None and not cache_url.startswith("s3://"):
        problems.append(f"{CACHE_URL} must be s3://bucket/prefix, not '{cache_url}'")
    client_id = env.get("GITHUB_CLIENT_ID") or None
    client_secret = env.get("GITHUB_CLIENT_SECRET") or None
    if bool(client_id) != bool(client_secret):
        problems.append("GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET go together (set both or none)")
    web_url = (env.get("GITHUB_WEB_URL") or DEFAULT_WEB).rstrip("/")
    if not web_url.startswith(("http://", "https://")):
        problems.append(f"GITHUB_WEB_URL must be GitHub's web address, not '{web_url}'")
    raw_approval = env.get("DOCKERCISE_FORK_APPROVAL") or ForkApproval.OUTSIDE.value
    try:
        fork_approval = ForkApproval(raw_approval)
    except ValueError:
        fork_approval = ForkApproval.OUTSIDE
        choices = ", ".join(a.value for a in ForkApproval)
        problems.append(f"DOCKERCISE_FORK_APPROVAL must be one of {choices}, not '{raw_approval}'")
    report_raw = (env.get("DOCKERCISE_REPORT") or "checks").strip().lower()
    if report_raw not in set(ReportMode):
        problems.append(f"DOCKERCISE_REPORT must be checks or statuses, not '{report_raw}'")
        report_raw = "checks"
    if problems:
        raise SettingsInvalid(problems)
    return Settings(
        app_id=app_id,
        private_key=private_key,
        webhook_secret=webhook_secret,
        events_secret=events_secret or webhook_secret,
        results=results,
        public_url=public_url,
        data_dir=data_dir,
        api_url=(env.get("GITHUB_API_URL") or DEFAULT_API).rstrip("/"),
        redis_url=redis_url,
        secret_key=env.get("DOCKERCISE_SECRET_KEY") or None,
        allowed_host_paths=allowed,
        trusted_repos=trusted,
        metadata_probe=probe,
        probe_image=env.get("DOCKERCISE_PROBE_IMAGE") or "busybox",
        workers=workers,
        stale_after=float(stale_after),
        keep_days=keep_days,
        limits=limits,
        cache_max=cache_max,
        cache_url=cache_url,
        cache_days=cache_days,
        client_id=client_id,
        client_secret=client_secret,
        web_url=web_url,
        fork_approval=fork_approval,
        environ=dict(env),
        mirror_max=mirror_max,
        legacy_secrets=legacy,
        downstream_allow=allow,
        downstream_secret=events_secret,
        report=ReportMode(report_raw),
    )

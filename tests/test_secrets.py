"""SecretScrubber: planted fake secrets of every kind go, ordinary code stays byte for byte."""

from __future__ import annotations

import base64
import json
import math
import random
import string
import sysconfig
from collections import Counter
from pathlib import Path

import pytest

from codedouble.trainer.mining import secrets
from codedouble.trainer.mining.secrets import PLACEHOLDER, Scrubbed, SecretScrubber

# Fake secrets of the right shapes, generated (never real keys); seeded so a failure reproduces.
_rng = random.Random(20240611)
B64 = string.ascii_letters + string.digits + "+/"
ALNUM = string.ascii_letters + string.digits


def rand(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def entropy(s: str) -> float:
    return -sum(c / len(s) * math.log2(c / len(s)) for c in Counter(s).values())


def high_entropy(alphabet: str, n: int, above: float) -> str:
    while True:
        s = rand(alphabet, n)
        if entropy(s) > above and any(c.isalpha() for c in s):
            return s


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def pem_body(lines: int, width: int = 64) -> list[str]:
    return [rand(B64, width) for _ in range(lines)] + [rand(B64, 24) + "=="]


RSA_BODY = ["MIIEowIBAAKCAQEA" + rand(B64, 48)] + pem_body(12)
EC_BODY = ["MHcCAQEEI" + rand(B64, 55)] + pem_body(1)
OPENSSH_BODY = ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"] + pem_body(5, 70)


def pem(kind: str, body: list[str]) -> str:
    return "\n".join([f"-----BEGIN {kind}-----", *body, f"-----END {kind}-----"])


AWS_KEY_ID = "AKIA" + rand(string.ascii_uppercase + "234567", 16)
AWS_SECRET = high_entropy(B64, 40, 4.5)
GITHUB = "ghp_" + rand(ALNUM, 36)
GITLAB = "glpat-" + rand(ALNUM + "_-", 20)
SLACK = f"xoxb-{rand(string.digits, 12)}-{rand(string.digits, 13)}-{rand(ALNUM, 24)}"
STRIPE = "sk_live_" + rand(ALNUM, 24)
JWT = ".".join(
    [
        b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()),
        b64url(json.dumps({"sub": rand(string.digits, 10), "name": "Ada", "iat": 1718000000}).encode()),
        b64url(_rng.randbytes(32)),
    ]
)
URL_PASSWORD = rand(ALNUM, 6) + "!" + rand(ALNUM, 5) + "$9"  # `!` and `$` defeat detect-secrets' own rule
PASSWORD = rand(ALNUM, 10) + "2x"
BASE64_BLOB = high_entropy(B64, 44, 4.6)
HEX_BLOB = high_entropy("0123456789abcdef", 40, 3.3)

# (text, the secret that must go, the kind it must be counted as)
PLANTED: list[tuple[str, str, str]] = [
    (f'AWS_ACCESS_KEY_ID = "{AWS_KEY_ID}"', AWS_KEY_ID, "AWS Access Key"),
    (f'aws_secret_access_key = "{AWS_SECRET}"', AWS_SECRET, "AWS Access Key"),
    (f'headers = {{"Authorization": "token {GITHUB}"}}', GITHUB, "GitHub Token"),
    (f"gitlab.Gitlab(url, private_token='{GITLAB}')", GITLAB, "GitLab Token"),
    (f"client = WebClient(token='{SLACK}')", SLACK, "Slack Token"),
    (f'stripe.api_key = "{STRIPE}"', STRIPE, "Stripe Access Key"),
    (f'const session = "{JWT}";', JWT, "JSON Web Token"),
    (f'DATABASE_URL = "postgres://admin:{URL_PASSWORD}@db.internal:5432/app"', URL_PASSWORD, "Basic Auth Credentials"),
    (f"  url: redis://:{URL_PASSWORD}@cache:6379/0", URL_PASSWORD, "Basic Auth Credentials"),
    (f'password = "{PASSWORD}"', PASSWORD, "Secret Keyword"),
    (f"PASSWORD: '{PASSWORD}'", PASSWORD, "Secret Keyword"),
    (f'db_pass="{PASSWORD}"', PASSWORD, "Secret Keyword"),
    (f'const config = {{ user: "app", password: "{PASSWORD}" }};', PASSWORD, "Secret Keyword"),
    (f'    "password": "{PASSWORD}",', PASSWORD, "Secret Keyword"),
    (f'\tpassword := "{PASSWORD}"', PASSWORD, "Secret Keyword"),  # Go: codedouble's supplement
    # detect-secrets' is_indirect_reference filter would let this one through
    (f'conn = psycopg.connect(host="db", password="{PASSWORD}")', PASSWORD, "Secret Keyword"),
    (f'blob = "{BASE64_BLOB}"', BASE64_BLOB, "Base64 High Entropy String"),
    (f'api_key = "{BASE64_BLOB}"', BASE64_BLOB, "Secret Keyword"),  # two plugins agree: the keyword names it
    (f"digest = '{HEX_BLOB}'", HEX_BLOB, "Hex High Entropy String"),
]


@pytest.fixture(scope="module")
def scrubber() -> SecretScrubber:
    return SecretScrubber()


@pytest.mark.parametrize(("text", "secret", "kind"), PLANTED, ids=[k + ":" + t[:24] for t, _, k in PLANTED])
def test_planted_secret_is_replaced(scrubber: SecretScrubber, text: str, secret: str, kind: str) -> None:
    result = scrubber.scrub(text)
    assert secret not in result.text
    assert result.text == text.replace(secret, PLACEHOLDER)  # only the value itself goes
    assert result.kinds == (kind,)


@pytest.mark.parametrize(
    ("kind", "body"),
    [("RSA PRIVATE KEY", RSA_BODY), ("EC PRIVATE KEY", EC_BODY), ("OPENSSH PRIVATE KEY", OPENSSH_BODY)],
)
def test_private_key_block_goes_whole(scrubber: SecretScrubber, kind: str, body: list[str]) -> None:
    text = f'def load():\n    key = """{pem(kind, body)}\n"""\n    return parse(key)\n'
    result = scrubber.scrub(text)
    assert result.text == f'def load():\n    key = """{PLACEHOLDER}\n"""\n    return parse(key)\n'
    assert result.kinds == ("Private Key",)
    for line in body:
        assert line not in result.text
    assert "PRIVATE KEY" not in result.text


def test_private_key_in_one_line_string_literal(scrubber: SecretScrubber) -> None:
    text = 'KEY = "' + pem("PRIVATE KEY", RSA_BODY).replace("\n", "\\n") + '\\n"\nnext_line()\n'
    result = scrubber.scrub(text)
    assert result.text == f'KEY = "{PLACEHOLDER}\\n"\nnext_line()\n'
    assert result.kinds == ("Private Key",)


def test_putty_key_file_goes_whole(scrubber: SecretScrubber) -> None:
    private = [rand(B64, 64) for _ in range(4)]
    ppk = "\n".join(
        [
            "PuTTY-User-Key-File-2: ssh-rsa",
            "Encryption: none",
            "Comment: rsa-key-20240611",
            "Public-Lines: 2",
            "AAAAB3NzaC1yc2EAAAABJQAAAQEA" + rand(B64, 36),
            rand(B64, 64),
            "Private-Lines: 4",
            *private,
            "Private-MAC: " + rand("0123456789abcdef", 40),
        ]
    )
    result = scrubber.scrub(f'PPK = """{ppk}\n"""\n')
    assert result == Scrubbed(f'PPK = """{PLACEHOLDER}\n"""\n', ("Private Key",))


def test_truncated_private_key_is_scrubbed_to_the_end(scrubber: SecretScrubber) -> None:
    text = "# fixture\nKEY = '''-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(RSA_BODY[:5])
    result = scrubber.scrub(text)
    assert result.text == f"# fixture\nKEY = '''{PLACEHOLDER}"
    assert result.kinds == ("Private Key",)


def test_private_key_marker_without_key_material_is_left_alone(scrubber: SecretScrubber) -> None:
    text = (
        '_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"\n'
        '_SK_END = b"-----END OPENSSH PRIVATE KEY-----"\n'
        "def is_pem(data: bytes) -> bool:\n"
        '    return data.startswith(b"-----BEGIN RSA PRIVATE KEY-----")\n'
    )
    assert scrubber.scrub(text) == Scrubbed(text, ())


def test_every_occurrence_of_a_value_goes_across_lines(scrubber: SecretScrubber) -> None:
    text = f'password = "{PASSWORD}"\n# the old password was {PASSWORD}\nlog("{PASSWORD}")\n'
    result = scrubber.scrub(text)
    assert PASSWORD not in result.text
    assert result.text.count(PLACEHOLDER) == 3
    assert result.kinds == ("Secret Keyword",)  # one secret, however often it occurs


def test_multi_secret_text_counts_each_secret(scrubber: SecretScrubber) -> None:
    text = "\n".join(
        [
            "import os",
            f'AWS_ACCESS_KEY_ID = "{AWS_KEY_ID}"',
            f'GITHUB_TOKEN = "{GITHUB}"',
            "",
            "def connect():",
            f'    return db.connect("postgres://app:{URL_PASSWORD}@db:5432/app")',
            f'SIGNING_KEY = """{pem("EC PRIVATE KEY", EC_BODY)}"""',
            f'stripe_key = "{STRIPE}"',
            f'password = "{PASSWORD}"  # also {PASSWORD} here',
        ]
    )
    result = scrubber.scrub(text)
    for secret in (AWS_KEY_ID, GITHUB, URL_PASSWORD, STRIPE, PASSWORD, *EC_BODY):
        assert secret not in result.text
    assert sorted(result.kinds) == sorted(
        [
            "Private Key",
            "AWS Access Key",
            "GitHub Token",
            "Basic Auth Credentials",
            "Stripe Access Key",
            "Secret Keyword",
        ]
    )
    assert result.text.startswith("import os\nAWS_ACCESS_KEY_ID = ")


ORDINARY = [
    "password = get_password()",
    'token = os.environ["TOKEN"]',
    "x = foo(bar, baz)",
    'api_key: str = ""',
    "def authenticate(username: str, password: str, api_key: str | None = None) -> Session:",
    "secret_key = settings.SECRET_KEY",
    'password = "${DB_PASSWORD}"',
    'password = "<password>"',
    'password = "{password}"',
    'password = "changeme"',
    'PASSWORD: "xxxxxxxx"',
    'DATABASE_URL = f"postgres://{user}:{password}@{host}/{name}"',
    'dsn = "postgres://%s:%s@%s/%s" % (user, password, host, name)',
    'dsn = "mysql://app:${MYSQL_PASSWORD}@db/app"',
    'BASE_URL = "https://api.example.com/v2/users?page=1&per_page=100"',
    "ssh://git@github.com/owner/repo.git",
    'msg = "Invalid password: must be at least 12 characters long."',
    'raise ValueError("token expired, log in again")',
    "if not secret: return None",
    'label = "ok"',
    '"""Return the session for `username`; the password is checked against the stored hash."""',
    'MIME_JSON = "application/json; charset=utf-8"',
    'ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"',
]

PYTHON_FUNCTION = '''\
def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the service settings from `path` (TOML), then let the environment override them.

    Secrets are never stored in the file: the password and the API key come from the environment,
    e.g. DB_PASSWORD and SERVICE_API_KEY, or from the secrets manager when those are unset.
    """
    environ = os.environ if environ is None else environ
    with path.open("rb") as f:
        raw = tomllib.load(f)
    database = raw.get("database", {})
    host = environ.get("DB_HOST", database.get("host", "localhost"))
    port = int(environ.get("DB_PORT", database.get("port", 5432)))
    user = environ.get("DB_USER", database.get("user", "app"))
    password = environ.get("DB_PASSWORD") or secrets_manager.fetch("db/password")
    if not password:
        raise ConfigError("no database password: set DB_PASSWORD")
    api_key = environ.get("SERVICE_API_KEY", "")
    timeout = float(raw.get("http", {}).get("timeout", 30.0))
    retries = int(raw.get("http", {}).get("retries", 3))
    base_url = raw.get("http", {}).get("base_url", "https://api.example.com/v1/")
    if not base_url.endswith("/"):
        base_url += "/"
    log_level = environ.get("LOG_LEVEL", raw.get("logging", {}).get("level", "INFO")).upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"unknown log level {log_level!r}")
    features = frozenset(raw.get("features", {}).get("enabled", []))
    for name in features:
        if name not in KNOWN_FEATURES:
            logger.warning("ignoring unknown feature %s", name)
    cache_dir = Path(environ.get("CACHE_DIR", raw.get("cache", {}).get("dir", "~/.cache/service")))
    cache_dir = cache_dir.expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    dsn = f"postgresql://{user}@{host}:{port}/{database.get('name', 'app')}"
    settings = Settings(
        dsn=dsn,
        password=password,
        api_key=api_key or None,
        timeout=timeout,
        retries=retries,
        base_url=base_url,
        log_level=log_level,
        features=features,
        cache_dir=cache_dir,
    )
    if settings.api_key is None:
        logger.info("no API key configured; running in read-only mode")
    if retries < 0 or timeout <= 0:
        raise ConfigError("retries must be >= 0 and timeout > 0")
    logger.debug("settings loaded from %s (user=%s, host=%s)", path, user, host)
    return settings
'''

JS_FUNCTION = """\
export async function login(client, { username, password, remember = false }) {
  if (!username || !password) {
    throw new Error("username and password are required");
  }
  const token = process.env.API_TOKEN ?? (await client.secrets.get("api-token"));
  const response = await fetch(`${client.baseUrl}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ username, password, remember }),
  });
  if (response.status === 401) {
    return { ok: false, reason: "invalid credentials" };
  }
  const { sessionId, expiresAt } = await response.json();
  localStorage.setItem("session", JSON.stringify({ sessionId, expiresAt }));
  return { ok: true, sessionId };
}
"""


@pytest.mark.parametrize("text", [*ORDINARY, PYTHON_FUNCTION, JS_FUNCTION])
def test_ordinary_code_is_unchanged(scrubber: SecretScrubber, text: str) -> None:
    assert len(PYTHON_FUNCTION.splitlines()) >= 50
    result = scrubber.scrub(text)
    assert result.text == text
    assert result.kinds == ()


def _all_planted() -> list[str]:
    keys = [pem("RSA PRIVATE KEY", RSA_BODY), pem("EC PRIVATE KEY", EC_BODY), pem("OPENSSH PRIVATE KEY", OPENSSH_BODY)]
    return [text for text, _, _ in PLANTED] + keys + ["\n".join(text for text, _, _ in PLANTED)]


@pytest.mark.parametrize("text", _all_planted())
def test_idempotent(scrubber: SecretScrubber, text: str) -> None:
    once = scrubber.scrub(text)
    assert once.kinds
    twice = scrubber.scrub(once.text)
    assert twice == Scrubbed(once.text, ())


def _stdlib_sample() -> list[str]:
    """A few standard-library modules with credentials, URLs, hashes and docstrings about them."""
    root = Path(sysconfig.get_paths()["stdlib"])
    names = ["smtplib.py", "urllib/request.py", "base64.py", "hashlib.py", "netrc.py", "ftplib.py", "uuid.py"]
    return [(root / name).read_text(encoding="utf-8") for name in names if (root / name).exists()]


def test_cache_and_prefilters_do_not_change_results() -> None:
    texts = _all_planted() + [PYTHON_FUNCTION, JS_FUNCTION, *ORDINARY] + _stdlib_sample()
    cached = SecretScrubber()
    first = [cached.scrub(t) for t in texts]
    second = [cached.scrub(t) for t in texts]  # every line now comes from the cache
    uncached = [SecretScrubber(cache_size=0).scrub(t) for t in texts]
    unfiltered = [SecretScrubber(cache_size=0, prefilter=False).scrub(t) for t in texts]
    assert first == second == uncached == unfiltered
    assert sum(len(r.kinds) for r in first) >= len(PLANTED)  # the comparison covered real findings


def test_cache_is_bounded() -> None:
    scrubber = SecretScrubber(cache_size=100)
    scrubber.scrub("\n".join(f"value_{i} = compute({i}, 'some text here')" for i in range(1000)))
    info = scrubber._scan.cache_info()  # type: ignore[attr-defined,unused-ignore]
    assert info.currsize <= 100
    assert scrubber.scrub(f'password = "{PASSWORD}"').kinds == ("Secret Keyword",)


def test_gate_lengths_hold_for_the_plugins_patterns() -> None:
    """A gate's shortest line must not exceed the shortest text its plugin's regexes can match."""
    from re import _parser  # type: ignore[attr-defined]

    from detect_secrets.plugins.base import RegexBasedDetector

    checked = 0
    for plugin in secrets._default_plugins():
        if isinstance(plugin, RegexBasedDetector):
            shortest = min(_parser.parse(r.pattern, r.flags).getwidth()[0] for r in plugin.denylist)
            assert secrets._GATES[type(plugin).__name__][0] <= shortest, type(plugin).__name__
            checked += 1
    assert checked >= 20

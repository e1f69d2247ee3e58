"""`point3 users …`, `point3 audit` and `point3 serve`: the reports portal's people, its audit
log and the web server. A password is read from a prompt (twice) or from --password-file
(FILE, or - for standard input, its first line), never from the command line, and never printed.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import unicodedata
from pathlib import Path

from point3_pipeline.config import ConfigError
from point3_pipeline.merchants import load_merchants
from point3_pipeline.portal import accounts, audit, settings
from point3_pipeline.portal.accounts import AccountError
from point3_pipeline.portal.store import Store, open_store

COMMANDS = frozenset({"users", "audit", "serve"})


def _store(*, create: bool = False) -> Store:
    path = settings.default_db_path(os.environ)
    if not create and not path.exists():
        raise ConfigError(f"there is no portal store at {path} yet: add a user with `point3 users add` "
                          f"(or set {settings.DB_VAR} to the store).")  # fmt: skip
    return open_store(path)


def _who() -> str:
    try:
        return f"command line ({getpass.getuser()})"
    except (KeyError, OSError):
        return "command line"


def _password(args: argparse.Namespace) -> str:
    if args.password_file is None:
        first = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("the same password again: ") != first:
            raise AccountError("the two passwords differ: nothing was changed.")
        return first
    if str(args.password_file) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(args.password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--password-file {args.password_file} cannot be read ({exc.strerror}).") from None
        except UnicodeDecodeError:
            raise ConfigError(f"--password-file {args.password_file} is not UTF-8 text.") from None
    lines = text.splitlines()
    return lines[0] if lines else ""


def _check_merchants(ids: list[str]) -> None:
    """Each id must be a merchant of the merchants file (or `default` without one)."""
    known = load_merchants(os.environ, check_keys=False)
    for merchant_id in ids:
        known.get(merchant_id)


def cmd_users(args: argparse.Namespace) -> int:
    action = args.users_command
    if action == "add":
        _check_merchants(args.merchants)
        password = _password(args)
        accounts.add_user(_store(create=True), args.name, password, args.merchants,
                          all_merchants=args.every_merchant, by=_who())  # fmt: skip
        print(f"user {args.name} added; may see: {', '.join(args.merchants) or 'every merchant'}")
    elif action == "remove":
        accounts.remove_user(_store(), args.name, by=_who())
        print(f"user {args.name} removed (and logged out)")
    elif action == "passwd":
        store = _store()
        password = _password(args)
        accounts.set_password(store, args.name, password, by=_who())
        print(f"password of {args.name} changed (its sessions ended)")
    elif action == "unlock":
        return _unlock(args)
    else:
        _list_users(_store())
    return 0


def _unlock(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.address is None):
        raise AccountError("users unlock takes a user NAME or --address ADDRESS.")
    lifted = accounts.unlock(_store(), name=args.name, address=args.address, by=_who())
    what = f"user {args.name}" if args.name else f"address {args.address}"
    print(f"{what}: {'lockout lifted' if lifted else 'was not locked'}; its failed logins forgotten")
    return 0


def _list_users(store: Store) -> None:
    users = accounts.list_users(store)
    print(f"{len(users)} user(s) in {store.path}" if users else f"no users in {store.path}")
    for user in users:
        seen = accounts.ALL_MERCHANTS if user.all_merchants else ", ".join(user.merchant_ids)
        print(f"  {user.name}: merchants {seen} (added {_shown(user.created_at, 16)}, changed {_shown(user.changed_at, 16)} KST)")
    for kind, subject, until in accounts.lockouts(store):
        print(f"  locked {kind} {printable(subject)} until {_shown(until)} KST (point3 users unlock)")


def printable(text: str) -> str:
    """`text` with its control characters escaped (\\n, \\x1b): a name typed at the login form
    must not forge a line of this output or drive the operator's terminal."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c)[0] == "C" else c for c in text)


def _shown(stamp: str, width: int = 19) -> str:
    """A stored KST time as people read it: 2026-12-03 04:35:10."""
    return stamp[:width].replace("T", " ")


def cmd_audit(args: argparse.Namespace) -> int:
    entries = audit.newest(_store(), args.limit, args.user)
    print(f"the newest {len(entries)} audit entries, newest first:" if entries else "the audit log is empty")
    for entry in entries:
        detail = f" {entry.detail}" if entry.detail else ""
        print(printable(f"{_shown(entry.at)} KST {entry.event} {entry.user_name or '-'}{detail} from {entry.address or '-'}"))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from point3_pipeline.portal.server import serve

    serve(settings.from_env(os.environ, host=args.host, port=args.port, insecure_loopback_demo=args.insecure_loopback_demo,
                            forwarded=args.forwarded_allow_ips))  # fmt: skip
    return 0


def _limit(value: str) -> int:
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 100_000):
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number from 1 to 100,000")
    return int(value)


def _port(value: str) -> int:
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 65_535):
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number from 1 to 65535")
    return int(value)


def _add_users(sub) -> None:
    p = sub.add_parser("users", help="the reports portal's people: add, remove, list, passwd, unlock")
    users = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    a = users.add_parser("add", help="a person who may see the merchants named (password from a prompt or --password-file)")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--merchant", dest="merchants", action="append", default=[], metavar="ID",
                   help="a merchant this person may see (repeat for more)")
    a.add_argument("--all-merchants", dest="every_merchant", action="store_true", help="every merchant, present and future")
    a.add_argument("--password-file", metavar="FILE", help="read the password from FILE's first line (- for standard input)")
    r = users.add_parser("remove", help="remove a person (their sessions end)")
    r.add_argument("name", metavar="NAME")
    users.add_parser("list", help="the people, their merchants and the lockouts in force")
    w = users.add_parser("passwd", help="a new password (their sessions end)")
    w.add_argument("name", metavar="NAME")
    w.add_argument("--password-file", metavar="FILE", help="read the password from FILE's first line (- for standard input)")
    u = users.add_parser("unlock", help="lift the lockout of a person (or of an address) after failed logins")
    u.add_argument("name", nargs="?", metavar="NAME")
    u.add_argument("--address", help="the client address to unlock instead")
    p.set_defaults(func=cmd_users)


def add_commands(sub) -> None:
    """users, audit and serve, on the `point3` parser's subcommands."""
    _add_users(sub)
    p = sub.add_parser("audit", help="the portal's audit log: logins, logouts, downloads, changes to people")
    p.add_argument("--limit", type=_limit, default=50, help="how many entries, newest first (default %(default)s)")
    p.add_argument("--user", help="only this person's entries")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("serve", help="run the reports portal (behind a TLS reverse proxy)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=_port, default=8080, help="port (default %(default)s)")
    p.add_argument("--forwarded-allow-ips", metavar="ADDRESSES",
                   help=f"the reverse proxy's addresses whose X-Forwarded-For/-Proto are believed (default: {settings.FORWARDED_VAR}, else none)")
    p.add_argument("--insecure-loopback-demo", action="store_true",
                   help="cookies without Secure, for a demo on a loopback address only (no TLS)")
    p.set_defaults(func=cmd_serve)

"""Runs SQL on a MariaDB/MySQL server named by a mysql:// URL, with the server's own
command-line client (mariadb or mysql): `python mysql_cli.py URL SQL [DATABASE]`.
Also imported by the tests."""

import shutil
import subprocess
import sys
from urllib.parse import unquote, urlparse


def client_args(dsn: str, database: str | None = None) -> list[str]:
    url = urlparse(dsn)
    binary = shutil.which("mariadb") or shutil.which("mysql")
    if binary is None:
        raise OSError("neither the mariadb nor the mysql client is installed")
    args = [binary, "-h", url.hostname or "127.0.0.1", "-P", str(url.port or 3306),
            "-u", unquote(url.username or "root"), "--batch", "--skip-column-names"]
    if url.password:
        args.append(f"-p{unquote(url.password)}")
    database = database or url.path.lstrip("/")
    if database:
        args.append(database)
    return args


def run(dsn: str, sql: str, database: str | None = None) -> str:
    done = subprocess.run(client_args(dsn, database) + ["-e", sql], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return done.stdout.rstrip("\n")


if __name__ == "__main__":
    print(run(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))

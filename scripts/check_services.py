"""Exit 0 when the database in DATABASE_URL and the Redis in REDIS_URL answer, else 1."""

import os
import sys

import environ
import MySQLdb
import redis


def main() -> int:
    db = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    try:
        MySQLdb.connect(
            host=db["HOST"] or "127.0.0.1",
            port=int(db["PORT"] or 3306),
            user=db["USER"],
            password=db["PASSWORD"] or "",
            connect_timeout=3,
        ).close()
        redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=3).ping()
    except Exception as exc:
        print(f"service check failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The production topology of docs/DEPLOY.md, stood up by its own steps in a temporary folder.

`deploy/deploy.sh` runs every step the document gives that does not need the machine itself
(env-file, database, prepare, units, nginx-site); what the document leaves to systemd and to
Debian's nginx is done here the way they do it:

- each daphne process runs the `ExecStart=` of the rendered `messenger@.service` (with its
  `%i`, `WorkingDirectory=` and `Environment=`, and nothing else in its environment);
- Debian's nginx runs the rendered site, included from a minimal main configuration that
  stands for /etc/nginx/nginx.conf, as an unprivileged instance: its own prefix, pid, logs and
  temporary folders, on free high ports of 127.0.0.1 (never 80 or 443, never the system's
  nginx), with a throwaway self-signed certificate.

The database is a fresh one (with its own account) on the test run's MariaDB, dropped at the
end; Redis is the test run's.
"""

import contextlib
import datetime
import http.client
import ipaddress
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "deploy.sh"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SERVER_NAME = "localhost"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# An operator's tuning of one limit (a line added to the env file): a long refill interval,
# so that once the login limit of an address bites it stays shut for the rest of the test.
LOGIN_IP_LIMIT = "5/3600"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unit_service(path: Path, instance: str = "") -> dict:
    """The [Service] section of a systemd unit: its command line (with %i), working folder
    and environment, the way systemd reads them."""
    service, section = {"Environment": {}}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            value = value.replace("%i", instance)
            if key == "Environment":
                name, setting = value.split("=", 1)
                service["Environment"][name] = setting
            else:
                service[key] = value
    service["ExecStart"] = shlex.split(service["ExecStart"])
    return service


def run_unit(path: Path, instance: str = "", **popen) -> subprocess.Popen:
    """Start a unit's ExecStart as systemd would (same folder, only the unit's environment)."""
    service = unit_service(path, instance)
    env = {"PATH": PATH, "LANG": "C.UTF-8", **service["Environment"]}
    return subprocess.Popen(service["ExecStart"], cwd=service["WorkingDirectory"], env=env, **popen)


def self_signed_certificate(cert: Path, key: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def insecure_tls() -> ssl.SSLContext:
    """The throwaway certificate is self-signed: the tests do not verify it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class Topology:
    base: Path
    https_port: int
    http_port: int
    # A second, test-only nginx server that APPENDS to X-Forwarded-For (a misconfigured proxy).
    appending_port: int
    daphne_ports: list[int]
    db_name: str
    db_user: str
    db_host: str
    db_port: str
    admin: list[str]
    admin_env: dict
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://{SERVER_NAME}:{self.https_port}"

    @property
    def env_file(self) -> Path:
        return self.base / "etc" / "messenger.env"

    @property
    def static_root(self) -> Path:
        return self.base / "static"

    @property
    def units(self) -> Path:
        return self.base / "systemd"

    @property
    def nginx_dir(self) -> Path:
        return self.base / "nginx"

    def deploy_env(self) -> dict:
        """The operator's shell: the settings docs/DEPLOY.md has them export, and nothing else."""
        return {
            "PATH": PATH,
            "LANG": "C.UTF-8",
            "HOME": str(self.base),
            "SERVER_NAME": SERVER_NAME,
            "APP_DIR": str(ROOT),
            "ENV_FILE": str(self.env_file),
            "STATIC_ROOT": str(self.static_root),
            "DAPHNE_PORTS": " ".join(map(str, self.daphne_ports)),
            "LISTEN": "127.0.0.1",
            "HTTP_PORT": str(self.http_port),
            "HTTPS_PORT": str(self.https_port),
            "TLS_CERT": str(self.base / "tls" / "cert.pem"),
            "TLS_KEY": str(self.base / "tls" / "key.pem"),
            "DB_NAME": self.db_name,
            "DB_USER": self.db_user,
            "DB_HOST": self.db_host,
            "DB_PORT": self.db_port,
            "REDIS_URL": settings.REDIS_URL,
            "MARIADB": shlex.join(self.admin),
            **self.admin_env,
        }

    def deploy(self, *step: str) -> None:
        result = subprocess.run(
            [str(DEPLOY), *step], env=self.deploy_env(), capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, f"deploy.sh {' '.join(step)}:\n{result.stdout}\n{result.stderr}"

    def nginx_command(self, *extra: str) -> list[str]:
        conf = self.nginx_dir / "nginx.conf"
        return [NGINX, "-p", str(self.nginx_dir), "-c", str(conf), "-e", str(self.nginx_dir / "error.log"), *extra]

    def write_nginx_main_conf(self) -> None:
        """Stands for Debian's /etc/nginx/nginx.conf, which includes the site from sites-enabled/."""
        folder = self.nginx_dir
        for sub in ("tmp", "logs"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        # As root (CI), nginx hands its workers to an unprivileged user, as Debian's does (www-data).
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        temp = "\n".join(f"    {kind}_temp_path {folder / 'tmp' / kind};" for kind in kinds)
        (folder / "appending.conf").write_text(
            f"""# Test only: a proxy that APPENDS to the client's X-Forwarded-For ($proxy_add_x_forwarded_for).
server {{
    listen 127.0.0.1:{self.appending_port};
    server_name {SERVER_NAME};
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto https;
    location / {{ proxy_pass http://messenger_daphne; }}
}}
"""
        )
        (folder / "nginx.conf").write_text(
            f"""{user}
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"};
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log {folder / "logs" / "access.log"};
{temp}
    include {folder / "sites-enabled" / "messenger"};
    include {folder / "appending.conf"};
}}
"""
        )

    def start(self) -> None:
        for folder in ("etc", "tls", "systemd"):
            (self.base / folder).mkdir(parents=True, exist_ok=True)
        self_signed_certificate(self.base / "tls" / "cert.pem", self.base / "tls" / "key.pem")
        # docs/DEPLOY.md's steps, in its order.
        self.deploy("env-file")
        with self.env_file.open("a") as env_file:
            env_file.write(f"RATE_LIMIT_LOGIN_IP={LOGIN_IP_LIMIT}\n")
        self.deploy("database")
        self.deploy("prepare")
        self.deploy("units", str(self.units))
        self.deploy("nginx-site", str(self.nginx_dir / "sites-enabled" / "messenger"))
        # `systemctl enable --now messenger@PORT` for each port.
        for port in self.daphne_ports:
            log = (self.base / f"daphne-{port}.log").open("wb")
            self.processes.append(
                run_unit(self.units / "messenger@.service", str(port), stdout=log, stderr=subprocess.STDOUT)
            )
            wait_for_port(port, self.processes[-1], self.base / f"daphne-{port}.log")
        # `nginx -t`, then `systemctl reload nginx`.
        self.write_nginx_main_conf()
        check = subprocess.run(self.nginx_command("-t"), capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
        log = (self.nginx_dir / "nginx.out").open("wb")
        self.processes.append(
            subprocess.Popen(self.nginx_command("-g", "daemon off;"), stdout=log, stderr=subprocess.STDOUT)
        )
        self.wait_until_served()

    def wait_until_served(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, _, _ = self.get("/login")
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError("the topology did not come up:\n" + self.logs())
            time.sleep(0.2)

    def get(self, path: str, **options):
        """(status, headers, body) of a GET, without following redirects."""
        return self.request("GET", path, **options)

    def request(
        self,
        method: str,
        path: str,
        *,
        port: int | None = None,
        scheme: str = "https",
        headers: dict | None = None,
        body: bytes | None = None,
        source: str = "127.0.0.1",
    ):
        """One request to nginx on 127.0.0.1, from the loopback address `source` (nginx's
        $remote_addr), with the Host a browser at https://localhost:PORT sends."""
        port = port or self.https_port
        options = {"timeout": 30, "source_address": (source, 0)}
        if scheme == "https":
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=insecure_tls(), **options)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", port, **options)
        try:
            connection.request(method, path, body=body, headers={"Host": f"{SERVER_NAME}:{port}", **(headers or {})})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def logs(self) -> str:
        parts = []
        for log in [*self.base.glob("daphne-*.log"), self.nginx_dir / "error.log", self.nginx_dir / "nginx.out"]:
            if log.exists():
                parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        subprocess.run(
            self.admin,
            input=f"DROP DATABASE IF EXISTS `{self.db_name}`; DROP USER IF EXISTS '{self.db_user}'@'{self.db_host}';",
            text=True,
            env={"PATH": PATH, **self.admin_env},
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"daphne on {port} did not start:\n" + log.read_text(errors="replace")[-3000:])
        time.sleep(0.1)


def make_topology() -> Topology:
    database = settings.DATABASES["default"]
    suffix = secrets.token_hex(4)
    host, port = database.get("HOST") or "127.0.0.1", str(database.get("PORT") or 3306)
    admin = ["mariadb", "--protocol=TCP", "-h", host, "-P", port, "-u", database.get("USER") or "root"]
    admin_env = {"MYSQL_PWD": database["PASSWORD"]} if database.get("PASSWORD") else {}
    # World-traversable, like /etc, /srv and /var/www: nginx's workers (an unprivileged user
    # when the tests run as root) read the static files from here.
    base = Path(tempfile.mkdtemp(prefix="messenger-topology-"))
    base.chmod(0o755)
    ports = set()
    while len(ports) < 5:
        ports.add(free_port())
    https_port, http_port, appending_port, *daphne_ports = sorted(ports)
    return Topology(
        base=base,
        https_port=https_port,
        http_port=http_port,
        appending_port=appending_port,
        daphne_ports=daphne_ports,
        db_name=f"msg_topology_{suffix}",
        db_user=f"msg_topology_{suffix}",
        db_host=host,
        db_port=port,
        admin=admin,
        admin_env=admin_env,
    )

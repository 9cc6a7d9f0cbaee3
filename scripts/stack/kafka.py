"""A single-node Apache Kafka (KRaft, broker + controller) from Maven Central jars.

Clients authenticate with SASL SCRAM-SHA-512 and are authorised by KRaft's
StandardAuthorizer with `allow.everyone.if.no.acl.found=false`: a principal can
do only what scripts/stack/principals.py grants it. Passwords are generated per
state directory (`credentials.json`, 0600). The controller listener takes SASL
PLAIN with a user of its own (SCRAM credentials live in the metadata the
controller serves, so they cannot guard the controller itself).

The jars are resolved once with `mvn` from `kafka/pom.xml` and cached under the
state directory, keyed by the pom's content, so a second run starts in seconds
and a changed pom fetches afresh. `KAFKA_HOME` (an unpacked Apache Kafka
distribution) is used instead when it is set.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from scripts.stack import credentials, principals
from scripts.stack.certs import make_broker_certs
from scripts.stack.kafka_init import create_topics  # its one home (re-exported)
from scripts.stack.lifetime import die_with_parent
from scripts.stack.paths import state_dir
from scripts.stack.waiting import GiveUp, wait_for

POM = Path(__file__).with_name("kafka") / "pom.xml"
LOG4J = Path(__file__).with_name("kafka") / "log4j2.properties"
HEAP = ["-Xms256m", "-Xmx512m"]


def classpath() -> str:
    """The broker's classpath: KAFKA_HOME's libs, or our cached Maven resolution."""
    home = os.environ.get("KAFKA_HOME")
    if home:
        libs = Path(home) / "libs"
        if not libs.is_dir():
            raise RuntimeError(f"KAFKA_HOME={home} has no libs/ directory")
        return f"{libs}/*"
    return f"{fetch_jars()}/*"


SUMS = Path(__file__).with_name("kafka") / "jars.sha256"
VERIFIED = ".sha256-verified"


def verify_jars(lib: Path, sums: Path) -> None:
    """Every jar in `lib` is one `sums` names (`sha256sum` format), with that SHA-256.

    The sums were recorded from the first resolution and are kept in git, so a jar that a
    mirror or a cache changed later (or a pom change nobody re-recorded) stops here.
    """
    expected = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            expected[name.lstrip("*")] = digest
    found = {jar.name: hashlib.sha256(jar.read_bytes()).hexdigest() for jar in lib.glob("*.jar")}
    unknown = sorted(set(found) - set(expected))
    missing = sorted(set(expected) - set(found))
    wrong = sorted(name for name in set(found) & set(expected) if found[name] != expected[name])
    if unknown or missing or wrong:
        raise RuntimeError(
            f"Kafka jars in {lib} do not match {sums.name}: "
            f"wrong SHA-256 {wrong}, not listed {unknown}, missing {missing}"
        )
    (lib / VERIFIED).write_text(sums.read_text())


def fetch_jars(*, quiet: bool = False) -> Path:
    """Resolve the broker jars with Maven (once per pom content), check their SHA-256
    against jars.sha256 (once per sums content), and return their directory."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    lib = state_dir("kafka-jars") / digest
    done = lib / ".complete"
    if done.exists() and os.environ.get("KAFKA_JARS_RECORD") == "1":
        record_sums(lib, SUMS)
    if done.exists():
        verified = lib / VERIFIED
        if not (verified.exists() and verified.read_text() == SUMS.read_text()):
            verify_jars(lib, SUMS)
        return lib
    check_tool("mvn", MIN_MAVEN, "maven", "Maven resolves Kafka's jars; or set KAFKA_HOME")
    if not quiet:
        print(
            "fetching Apache Kafka jars with Maven (first run only, about 45 MB)…",
            file=sys.stderr,
            flush=True,
        )
    shutil.rmtree(lib, ignore_errors=True)
    subprocess.run(
        [
            "mvn",
            "-B",
            # First run: Maven's per-file "Downloaded from" lines are the progress; later
            # runs (and quiet callers) resolve from ~/.m2 in silence.
            *(["-q"] if quiet else ["-Dstyle.color=never"]),
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib}",
        ],
        check=True,
    )
    if os.environ.get("KAFKA_JARS_RECORD") == "1":  # `make kafka-sums`: after a pom change
        record_sums(lib, SUMS)
    verify_jars(lib, SUMS)
    done.touch()
    return lib


def record_sums(lib: Path, sums: Path) -> None:
    """Write `sums` from the jars in `lib` (a deliberate act: review the diff in git)."""
    lines = [
        f"{hashlib.sha256(jar.read_bytes()).hexdigest()}  {jar.name}\n"
        for jar in sorted(lib.glob("*.jar"))
    ]
    sums.write_text("".join(lines))


MIN_JAVA = 17  # Kafka 4.x brokers
MIN_MAVEN = 3


def tool_major(tool: str) -> int | None:
    """The major version `tool` reports (java -version, mvn -v); None if absent or unreadable."""
    if shutil.which(tool) is None:
        return None
    flag = "-version" if tool == "java" else "-v"
    done = subprocess.run([tool, flag], capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r'(?:version "?|Maven )(\d+)(?:\.(\d+))?', done.stdout + done.stderr)
    if match is None:
        return None
    major = int(match[1])
    return int(match[2] or 0) if tool == "java" and major == 1 else major  # 1.8 is Java 8


def check_tool(tool: str, minimum: int, package: str, why: str) -> None:
    """One line, at once, when a tool is missing or too old (rather than a traceback later)."""
    major = tool_major(tool)
    if major is None:
        raise RuntimeError(f"{tool} not found: {why} (Debian: apt install {package})")
    if major < minimum:
        raise RuntimeError(f"{tool} {major} is too old: {minimum}+ is needed ({why})")


def _java(*args: str) -> list[str]:
    return ["java", *args]


@dataclass
class LocalKafka:
    """One KRaft node in `root`, clients on 127.0.0.1:`port`."""

    root: Path
    port: int
    controller_port: int
    # False only to measure what security costs (bench/sasl_cost.py): PLAINTEXT, no ACLs.
    secured: bool = True
    # SASL_SSL with a CA made for this stack (certs.py) instead of SASL_PLAINTEXT. Off: on
    # loopback it protects nothing and costs the relay's producer 15-30% of its throughput
    # (bench/sasl_cost.py, README "Security").
    tls: bool = False
    _process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def passwords(self) -> dict[str, str]:
        """Each principal's password (generated on the first start in `root`)."""
        return principals.passwords(self.root / "credentials.json")

    @property
    def ca(self) -> Path | None:
        """The CA certificate clients trust, when the listener is TLS (made on first use)."""
        return make_broker_certs(self.root / "tls").ca if self.secured and self.tls else None

    @property
    def listener(self) -> str:
        """The client (and inter-broker) listener's name, which is its protocol."""
        return principals.TLS_PROTOCOL if self.tls else principals.PROTOCOL

    def write_properties(self, directory: Path) -> list[Path]:
        """A `kcat -F` file per principal in `directory` (principals.write_properties)."""
        return principals.write_properties(directory, self.bootstrap, self.passwords, self.ca)

    def client_config(self, principal: str = principals.ADMIN) -> dict[str, str]:
        if not self.secured:
            return {"bootstrap.servers": self.bootstrap}
        password = self.passwords[principal]
        return principals.client_config(self.bootstrap, principal, password, self.ca)

    def process_env(self, principal: str) -> dict[str, str]:
        if not self.secured:
            return {"KAFKA_BROKERS": self.bootstrap}
        password = self.passwords[principal]
        return principals.process_env(self.bootstrap, principal, password, self.ca)

    @property
    def log_path(self) -> Path:
        return self.root / "kafka.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process and self._process.poll() is None else None

    def start(self, timeout: float = 120) -> None:
        check_tool("java", MIN_JAVA, "openjdk-17-jre-headless", "Java runs the Kafka broker")
        cp = classpath()
        if not (self.root / "credentials.json").exists():
            # Formatted before the broker had users (or never): start afresh.
            shutil.rmtree(self.root / "data", ignore_errors=True)
        config = self._write_config()
        if not (self.root / "data" / "meta.properties").exists():
            self._format(cp, config)
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            die_with_parent(  # gone with a killed orchestrator
                _java(
                    *HEAP,
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={LOG4J}",
                    f"-Dkafka.logs.dir={self.root}",
                    "-cp",
                    cp,
                    "kafka.Kafka",
                    str(config),
                ),
                signal.SIGTERM,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(
            self._answers_metadata, timeout=timeout, interval=0.5, what=f"Kafka on :{self.port}"
        )
        if self.secured:
            found = self.passwords
            principals.create_users(
                AdminClient({**self.client_config(), "log_level": "0"}),
                {name: found[name] for name in principals.PRINCIPALS},
                self.client_config,
            )

    def stop(self, timeout: float = 60) -> None:
        """Controlled shutdown (SIGTERM): the broker flushes and leaves cleanly."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def create_topics(self, partitions: dict[str, int], timeout: float = 60) -> None:
        """Create the topics that do not exist yet; existing ones are left as they are."""
        admin = AdminClient(self.client_config())
        create_topics(admin, partitions, timeout)

    def grant(self, plan: principals.TopicPlan) -> None:
        """The ACLs each principal needs for `plan`'s topics and group."""
        if self.secured:
            principals.grant(AdminClient(self.client_config()), plan)

    def _write_config(self) -> Path:
        data = self.root / "data"
        config = self.root / "server.properties"
        security = self._security_config() if self.secured else self._plaintext_config()
        lines = [*security, *self._base_config(data)]
        credentials.write_private(config, "\n".join(lines))  # it holds passwords
        return config

    def _plaintext_config(self) -> list[str]:
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]

    def _security_config(self) -> list[str]:
        found, admin, controller = self.passwords, principals.ADMIN, principals.CONTROLLER
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        name = self.listener
        return [
            f"listeners={name}://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners={name}://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            f"inter.broker.listener.name={name}",
            f"listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,{name}:{name}",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain} required "
            f'username="{controller}" password="{found[controller]}" '
            f'user_{controller}="{found[controller]}";',
            f"listener.name.{name.lower()}.scram-sha-512.sasl.jaas.config={scram} required "
            f'username="{admin}" password="{found[admin]}";',
            *self._tls_config(),
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{admin};User:{controller}",
        ]

    def _tls_config(self) -> list[str]:
        """The broker's key and certificate, and the CA it trusts when it connects to
        itself (inter-broker traffic goes through the same listener)."""
        if not self.tls:
            return []
        made = make_broker_certs(self.root / "tls")
        return [
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={made.keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={made.ca}",
        ]

    def _base_config(self, data: Path) -> list[str]:
        return [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
            f"log.dirs={data}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # Lets tests use short consumer sessions, so a killed consumer's
            # partitions move on in seconds rather than the default 45.
            "group.min.session.timeout.ms=1000",
            "auto.create.topics.enable=false",
            "",
        ]

    def _format(self, cp: str, config: Path) -> None:
        cluster_id = subprocess.run(
            _java("-cp", cp, "kafka.tools.StorageTool", "random-uuid"),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        subprocess.run(
            _java(
                f"-Dlog4j2.configurationFile={LOG4J}",
                "-cp",
                cp,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(config),
                *self._format_users(),
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def _format_users(self) -> list[str]:
        """The broker authenticates to itself as the admin: that user must exist before
        the broker first starts."""
        if not self.secured:
            return []
        password = self.passwords[principals.ADMIN]
        return ["--add-scram", f"SCRAM-SHA-512=[name={principals.ADMIN},password={password}]"]

    def _answers_metadata(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            lines = self.log_path.read_text(errors="replace").splitlines() or [""]
            reason = next((line for line in reversed(lines) if "ERROR" in line), lines[-1])
            raise GiveUp(
                f"Kafka exited with {self._process.returncode} while starting: "
                f"{reason.strip()[:300]} (log: {self.log_path})"
            )
        admin = AdminClient({**self.client_config(), "log_level": 0})
        metadata = admin.list_topics(timeout=2)
        return bool(metadata.brokers)

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

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from scripts.stack import credentials, principals
from scripts.stack.paths import state_dir
from scripts.stack.waiting import wait_for

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


def fetch_jars(*, quiet: bool = False) -> Path:
    """Resolve the broker jars with Maven (once per pom content) and return their directory."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    lib = state_dir("kafka-jars") / digest
    done = lib / ".complete"
    if done.exists():
        return lib
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch Kafka's jars; or set KAFKA_HOME")
    if not quiet:
        print(
            "fetching Apache Kafka jars with Maven (first run only)…", file=sys.stderr, flush=True
        )
    shutil.rmtree(lib, ignore_errors=True)
    subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib}",
        ],
        check=True,
    )
    done.touch()
    return lib


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
    _process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def passwords(self) -> dict[str, str]:
        """Each principal's password (generated on the first start in `root`)."""
        return principals.passwords(self.root / "credentials.json")

    def client_config(self, principal: str = principals.ADMIN) -> dict[str, str]:
        if not self.secured:
            return {"bootstrap.servers": self.bootstrap}
        return principals.client_config(self.bootstrap, principal, self.passwords[principal])

    def process_env(self, principal: str) -> dict[str, str]:
        if not self.secured:
            return {"KAFKA_BROKERS": self.bootstrap}
        return principals.process_env(self.bootstrap, principal, self.passwords[principal])

    @property
    def log_path(self) -> Path:
        return self.root / "kafka.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process and self._process.poll() is None else None

    def start(self, timeout: float = 120) -> None:
        cp = classpath()
        if not (self.root / "credentials.json").exists():
            # Formatted before the broker had users (or never): start afresh.
            shutil.rmtree(self.root / "data", ignore_errors=True)
        config = self._write_config()
        if not (self.root / "data" / "meta.properties").exists():
            self._format(cp, config)
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
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
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(
            self._answers_metadata, timeout=timeout, interval=0.5, what=f"Kafka on :{self.port}"
        )
        if self.secured:
            principals.create_users(self.bootstrap, self.passwords)

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
        return [
            f"listeners=SASL_PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=SASL_PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain} required "
            f'username="{controller}" password="{found[controller]}" '
            f'user_{controller}="{found[controller]}";',
            f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={scram} required "
            f'username="{admin}" password="{found[admin]}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{admin};User:{controller}",
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
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"kafka exited with {self._process.returncode}:\n{tail}")
        admin = AdminClient({**self.client_config(), "log_level": 0})
        metadata = admin.list_topics(timeout=2)
        return bool(metadata.brokers)


def create_topics(admin: AdminClient, partitions: dict[str, int], timeout: float = 60) -> None:
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(name, num_partitions=count, replication_factor=1)
        for name, count in partitions.items()
        if name not in existing
    ]
    if not wanted:
        return
    for future in admin.create_topics(wanted, operation_timeout=timeout).values():
        with contextlib.suppress(KafkaException):  # created meanwhile by someone else
            future.result(timeout)
    wait_for(
        lambda: set(partitions) <= set(admin.list_topics(timeout=5).topics),
        timeout=timeout,
        what=f"topics {sorted(partitions)}",
    )

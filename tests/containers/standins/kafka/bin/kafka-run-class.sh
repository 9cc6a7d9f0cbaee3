#!/bin/bash
# Runs a Kafka class with the image's jars (the stand-in's small kafka-run-class.sh).
# Tools log warnings to stderr; the broker passes its own log4j configuration.
set -euo pipefail
class=$1; shift
log4j="${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.properties}"
# Short-lived tools: a small heap and the quick-starting JIT tier.
heap="${KAFKA_HEAP_OPTS:--Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC}"
# shellcheck disable=SC2086  # the *_OPTS variables are word lists, as in Kafka's script
exec java $heap $log4j ${KAFKA_OPTS:-} -Djava.awt.headless=true -cp '/opt/kafka/libs/*' "$class" "$@"

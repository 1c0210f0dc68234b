#!/bin/sh
# Creates the platform's Kafka topics from topics.yaml with Kafka's own kafka-topics.sh /
# kafka-configs.sh (no operator needed). Idempotent: run it on every install and upgrade.
#   - missing topics are created (--create --if-not-exists) with their partitions,
#     replication factor and configs;
#   - existing topics get their configs re-applied (kafka-configs --alter --add-config), so a
#     retention change in topics.yaml converges;
#   - partition counts of existing topics are never changed (that would move keys between
#     partitions and break per-aggregate ordering): a mismatch is reported, not "fixed".
#
# Environment:
#   BOOTSTRAP_SERVER           bootstrap servers, e.g. kafka:9092 (or KAFKA_BROKERS)   required
#   TOPICS_FILE                topic definitions            default: topics.yaml beside this script
#   KAFKA_BIN                  folder of the Kafka CLI scripts          default: /opt/kafka/bin
#   KAFKA_COMMAND_CONFIG       client properties file (TLS/SASL), passed as --command-config
#   TOPIC_REPLICATION_FACTOR   override every topic's replication factor (1 for a dev broker)
#   TOPIC_MIN_INSYNC_REPLICAS  override min.insync.replicas (always capped at the replication factor)
#   KAFKA_TOPIC_PREFIX         put before every topic name, as the services do (e.g. staging.)
#   WAIT_TIMEOUT_SECONDS       how long to wait for the cluster to answer           default: 180
#   DRY_RUN=1                  print the commands instead of running them
set -eu

script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
TOPICS_FILE=${TOPICS_FILE:-$script_dir/topics.yaml}
KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}
BOOTSTRAP=${BOOTSTRAP_SERVER:-${KAFKA_BROKERS:-}}
WAIT_TIMEOUT_SECONDS=${WAIT_TIMEOUT_SECONDS:-180}
DRY_RUN=${DRY_RUN:-0}

log() { printf '%s create-topics: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -n "$BOOTSTRAP" ] || die "set BOOTSTRAP_SERVER (or KAFKA_BROKERS), e.g. kafka:9092"
[ -r "$TOPICS_FILE" ] || die "cannot read topic definitions at $TOPICS_FILE"
case "$DRY_RUN" in 1 | true | yes) DRY_RUN=1 ;; *) DRY_RUN=0 ;; esac
if [ "$DRY_RUN" = 0 ]; then
  [ -x "$KAFKA_BIN/kafka-topics.sh" ] || die "no kafka-topics.sh in $KAFKA_BIN (set KAFKA_BIN)"
fi

# kafka <tool> <args...>: one Kafka CLI call with the common connection arguments.
kafka() {
  tool=$1
  shift
  if [ -n "${KAFKA_COMMAND_CONFIG:-}" ]; then
    set -- --command-config "$KAFKA_COMMAND_CONFIG" "$@"
  fi
  if [ "$DRY_RUN" = 1 ]; then
    printf '%s' "$tool --bootstrap-server $BOOTSTRAP"
    printf ' %s' "$@"
    printf '\n'
    return 0
  fi
  "$KAFKA_BIN/$tool" --bootstrap-server "$BOOTSTRAP" "$@"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# --- parse topics.yaml into "name<TAB>partitions<TAB>replication<TAB>k=v,k=v" lines -----------
awk '
  function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
  function unquote(s) {
    s = trim(s)
    if (s ~ /^".*"$/ || s ~ /^\047.*\047$/) s = substr(s, 2, length(s) - 2)
    return s
  }
  function flush() {
    if (name != "") {
      if (partitions == "" || replication == "") {
        printf "topic %s needs partitions and replicationFactor\n", name > "/dev/stderr"; bad = 1
      }
      print name "\t" partitions "\t" replication "\t" config
    }
    name = ""; partitions = ""; replication = ""; config = ""; inconfig = 0
  }
  /^[ \t]*(#.*)?$/ { next }
  {
    line = $0
    sub(/[ \t]+#.*$/, "", line)
    indent = match(line, /[^ ]/) - 1
  }
  line ~ /^topics:[ \t]*$/ { intopics = 1; next }
  indent == 0 { intopics = 0 }
  !intopics { next }
  line ~ /^[ \t]*- name:/ { flush(); v = line; sub(/^[ \t]*- name:/, "", v); name = unquote(v); next }
  inconfig && indent > configindent {
    key = line; sub(/:.*/, "", key); key = trim(key)
    val = line; sub(/^[^:]*:/, "", val); val = unquote(val)
    config = config (config == "" ? "" : ",") key "=" val
    next
  }
  { inconfig = 0 }
  line ~ /^[ \t]+partitions:/ { v = line; sub(/^[^:]*:/, "", v); partitions = unquote(v); next }
  line ~ /^[ \t]+replicationFactor:/ { v = line; sub(/^[^:]*:/, "", v); replication = unquote(v); next }
  line ~ /^[ \t]+config:[ \t]*$/ { inconfig = 1; configindent = indent; next }
  { printf "unexpected line in topics file: %s\n", $0 > "/dev/stderr"; bad = 1 }
  END { flush(); if (bad) exit 1 }
' "$TOPICS_FILE" >"$work/topics.tsv" || die "cannot parse $TOPICS_FILE"
[ -s "$work/topics.tsv" ] || die "no topics defined in $TOPICS_FILE"

# --- wait for the cluster ---------------------------------------------------------------------
if [ "$DRY_RUN" = 1 ]; then
  : >"$work/existing"
else
  deadline=$(($(date +%s) + WAIT_TIMEOUT_SECONDS))
  until kafka kafka-topics.sh --list >"$work/existing" 2>"$work/list.err"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      cat "$work/list.err" >&2
      die "Kafka at $BOOTSTRAP did not answer within ${WAIT_TIMEOUT_SECONDS}s"
    fi
    log "waiting for Kafka at $BOOTSTRAP ..."
    sleep 3
  done
fi

# --- apply ------------------------------------------------------------------------------------
tab=$(printf '\t')
created=0
updated=0
while IFS=$tab read -r name partitions replication config; do
  name="${KAFKA_TOPIC_PREFIX:-}$name"
  replication=${TOPIC_REPLICATION_FACTOR:-$replication}

  # Rebuild the config list: apply the min.insync.replicas override and never let it exceed
  # the replication factor (acks=all producers would be refused with NOT_ENOUGH_REPLICAS).
  configs=""
  old_ifs=$IFS
  IFS=,
  for kv in $config; do
    key=${kv%%=*}
    value=${kv#*=}
    if [ "$key" = min.insync.replicas ]; then
      value=${TOPIC_MIN_INSYNC_REPLICAS:-$value}
      if [ "$value" -gt "$replication" ]; then value=$replication; fi
    fi
    configs="$configs${configs:+,}$key=$value"
  done
  IFS=$old_ifs

  if grep -qxF "$name" "$work/existing"; then
    have=$(kafka kafka-topics.sh --describe --topic "$name" |
      sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1)
    if [ -n "$have" ] && [ "$have" != "$partitions" ]; then
      log "WARNING: $name has $have partitions, topics.yaml says $partitions; left unchanged (changing it would reorder keys)"
    fi
    if [ -n "$configs" ]; then
      kafka kafka-configs.sh --alter --entity-type topics --entity-name "$name" --add-config "$configs" >/dev/null
    fi
    log "exists:  $name (configs applied: ${configs:-none})"
    updated=$((updated + 1))
  else
    set -- --create --if-not-exists --topic "$name" --partitions "$partitions" --replication-factor "$replication"
    IFS=,
    for kv in $configs; do set -- "$@" --config "$kv"; done
    IFS=$old_ifs
    kafka kafka-topics.sh "$@"
    log "created: $name (partitions=$partitions replication=$replication ${configs})"
    created=$((created + 1))
  fi
done <"$work/topics.tsv"

log "done: $created created, $updated already present"

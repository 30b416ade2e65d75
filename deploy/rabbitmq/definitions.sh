#!/usr/bin/env bash
# Writes the broker topology ponte uses as a RabbitMQ definitions file, for operators who manage
# the broker by definitions (the host also declares all of it itself, idempotently, at start).
#   usage: deploy/rabbitmq/definitions.sh [IDS] [EXCHANGE] [DELIVERY_LIMIT] > definitions.json
#     IDS: "1-50" or "1-3,7" (default 1-50); EXCHANGE default pax; DELIVERY_LIMIT default 20
# Import: rabbitmqctl import_definitions definitions.json
set -euo pipefail
ids="${1:-1-50}" ex="${2:-pax}" limit="${3:-20}"
units=()
IFS=',' read -ra parts <<<"$ids"
for p in "${parts[@]}"; do
  if [[ "$p" =~ ^([0-9]+)-([0-9]+)$ ]]; then
    for ((i = BASH_REMATCH[1]; i <= BASH_REMATCH[2]; i++)); do units+=("$i"); done
  elif [[ "$p" =~ ^[0-9]+$ ]]; then units+=("$p")
  else echo "definitions: bad id list '$ids'" >&2; exit 2
  fi
done
queue_args="{\"x-queue-type\": \"quorum\", \"x-single-active-consumer\": true, \"x-delivery-limit\": $limit, \"x-dead-letter-exchange\": \"$ex.dlx\"}"
{
  echo '{'
  echo '  "exchanges": ['
  echo "    {\"name\": \"$ex\", \"vhost\": \"/\", \"type\": \"topic\", \"durable\": true, \"auto_delete\": false, \"internal\": false, \"arguments\": {}},"
  echo "    {\"name\": \"$ex.dlx\", \"vhost\": \"/\", \"type\": \"fanout\", \"durable\": true, \"auto_delete\": false, \"internal\": false, \"arguments\": {}}"
  echo '  ],'
  echo '  "queues": ['
  echo "    {\"name\": \"$ex.dead\", \"vhost\": \"/\", \"durable\": true, \"auto_delete\": false, \"arguments\": {\"x-queue-type\": \"quorum\"}},"
  echo "    {\"name\": \"$ex.upstream\", \"vhost\": \"/\", \"durable\": true, \"auto_delete\": false, \"arguments\": $queue_args},"
  n=${#units[@]}
  for ((k = 0; k < n; k++)); do
    sep=','; ((k == n - 1)) && sep=''
    echo "    {\"name\": \"$ex.unit.${units[k]}\", \"vhost\": \"/\", \"durable\": true, \"auto_delete\": false, \"arguments\": $queue_args}$sep"
  done
  echo '  ],'
  echo '  "bindings": ['
  echo "    {\"source\": \"$ex.dlx\", \"vhost\": \"/\", \"destination\": \"$ex.dead\", \"destination_type\": \"queue\", \"routing_key\": \"\", \"arguments\": {}},"
  echo "    {\"source\": \"$ex\", \"vhost\": \"/\", \"destination\": \"$ex.upstream\", \"destination_type\": \"queue\", \"routing_key\": \"$ex.origin.#\", \"arguments\": {}},"
  for ((k = 0; k < n; k++)); do
    sep=','; ((k == n - 1)) && sep=''
    echo "    {\"source\": \"$ex\", \"vhost\": \"/\", \"destination\": \"$ex.unit.${units[k]}\", \"destination_type\": \"queue\", \"routing_key\": \"$ex.unit.${units[k]}.#\", \"arguments\": {}}$sep"
  done
  echo '  ]'
  echo '}'
}
